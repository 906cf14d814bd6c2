"""The label scheme: which tasks a run predicts, and each task's classes in order.

A scheme is data, not code. A run's tasks are `config.tasks` (columns of labels.csv, by
default `culture,medium,period`); each task's classes are `config.classes.<task>` (names
separated by commas, in the order of the head's outputs), or, when that is empty or absent,
the labels that task's column holds in the training split, sorted. The resolved scheme is
written into the run's config.json and checkpoint metadata, and everything downstream
(dataset labels, heads, losses, metrics, calibration, familiarity, predict's columns, the
web page) reads it from there. This module is the only one that knows the shared set's
three tasks, as DEFAULT: a run saved before schemes were configurable uses it.

An empty label means unknown for that task: its id is UNKNOWN (-1), and losses and
metrics leave it out. Labels are compared stripped and lower-cased.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Mapping

import numpy as np

# Class id of an unknown (empty) label; losses and metrics mask it out.
UNKNOWN = -1

# labels.csv columns and output fields that a task cannot be named after.
RESERVED_NAMES = ("image", "split", "error", "familiarity", "unfamiliar", "low_confidence",
                  "neighbours", "corrected", "source_url")
_TASK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SchemeError(ValueError):
  """A scheme that cannot be used: the message names the task, class or setting."""


@dataclasses.dataclass(frozen=True)
class LabelScheme:
  """Tasks in order, and each task's class names in the order of its head's outputs."""
  tasks: tuple[str, ...]
  class_names: tuple[tuple[str, ...], ...]  # one tuple per task, in `tasks` order

  def __post_init__(self):
    if not self.tasks:
      raise SchemeError("a scheme needs at least one task (config.tasks)")
    if len(set(self.tasks)) != len(self.tasks):
      raise SchemeError(f"config.tasks names a task twice: {','.join(self.tasks)}")
    if len(self.class_names) != len(self.tasks):
      raise SchemeError("a scheme needs one list of classes per task")
    for task, names in zip(self.tasks, self.class_names):
      if not _TASK_NAME.match(task) or task in RESERVED_NAMES:
        raise SchemeError(f"{task!r} cannot name a task: use a labels.csv column made of "
                          f"letters, digits and _, other than {', '.join(RESERVED_NAMES)}")
      if len(names) < 2:
        raise SchemeError(f"task {task} needs at least two classes, not {list(names)}")
      if len(set(names)) != len(names) or not all(names):
        raise SchemeError(f"the classes of {task} must be distinct and non-empty: {list(names)}")

  # -- Lookups ----------------------------------------------------------------------------

  @property
  def classes(self) -> dict[str, tuple[str, ...]]:
    return dict(zip(self.tasks, self.class_names))

  @property
  def heads(self) -> tuple[tuple[str, int], ...]:
    """(task, number of classes) per task: what the model's heads are built from."""
    return tuple((task, len(names)) for task, names in zip(self.tasks, self.class_names))

  def num_classes(self, task: str) -> int:
    return len(self.classes[task])

  def class_id(self, task: str, name: str) -> int:
    """A label's class id (UNKNOWN for ''); SchemeError naming the allowed classes."""
    name = normalise(name)
    if not name:
      return UNKNOWN
    classes = self.classes[task]
    if name not in classes:
      raise SchemeError(f"{task} {name!r} is not one of the run's classes "
                        f"({', '.join(classes)})")
    return classes.index(name)

  def class_name(self, task: str, class_id: int) -> str:
    return "" if class_id == UNKNOWN else self.classes[task][class_id]

  @property
  def all_correct_name(self) -> str:
    """How reports name 'every task right': 'all three' for three tasks."""
    words = {1: "the one task", 2: "both", 3: "all three", 4: "all four", 5: "all five"}
    return words.get(len(self.tasks), f"all {len(self.tasks)}")

  # -- Saved forms ------------------------------------------------------------------------

  def to_json(self) -> dict:
    return {"tasks": list(self.tasks), "classes": {t: list(c) for t, c in self.classes.items()}}

  @classmethod
  def from_json(cls, saved: Mapping) -> "LabelScheme":
    try:
      tasks = tuple(saved["tasks"])
      return cls(tasks, tuple(tuple(saved["classes"][t]) for t in tasks))
    except (KeyError, TypeError) as error:
      raise SchemeError(f"a saved scheme needs 'tasks' and 'classes' for each ({error})") from None

  def config_values(self) -> dict:
    """{'tasks': 'a,b', 'classes': {task: 'x,y,z'}}: the scheme as config.json holds it."""
    return {"tasks": ",".join(self.tasks),
            "classes": {t: ",".join(c) for t, c in self.classes.items()}}


DEFAULT = LabelScheme(
    tasks=("culture", "medium", "period"),
    class_names=(("egyptian", "greek", "roman"),
                 ("architecture", "painting", "sculpture"),
                 ("early", "middle", "late")))


def normalise(label) -> str:
  """The form labels are compared in: stripped, lower-cased ('' for unknown)."""
  return str(label).strip().lower()


def split_names(text) -> tuple[str, ...]:
  """'a, b,c' (or a list) -> ('a', 'b', 'c'); '' -> ()."""
  if isinstance(text, (list, tuple)):
    return tuple(str(x).strip() for x in text if str(x).strip())
  return tuple(x.strip() for x in str(text or "").split(",") if x.strip())


def configured_tasks(config) -> tuple[str, ...]:
  """config.tasks as a tuple; a config without it (saved before schemes) has DEFAULT's."""
  tasks = split_names(config.get("tasks", ",".join(DEFAULT.tasks)))
  if not tasks:
    raise SchemeError("config.tasks is empty: name at least one labels.csv column")
  return tasks


def configured_classes(config, task: str) -> tuple[str, ...]:
  """The classes config.classes gives for `task` (normalised), or () to read them from data."""
  given = config.get("classes") or {}
  return tuple(normalise(c) for c in split_names(given.get(task, "")))


def from_config(config) -> LabelScheme:
  """The scheme of a saved (resolved) config; DEFAULT for a config saved before schemes."""
  if "tasks" not in config:
    return DEFAULT
  tasks = configured_tasks(config)
  missing = [t for t in tasks if not configured_classes(config, t)]
  if missing:
    raise SchemeError(f"the config gives no classes for {', '.join(missing)}: "
                      "is it a resolved run config (config.json)?")
  return LabelScheme(tasks, tuple(configured_classes(config, t) for t in tasks))


def resolve(config, train_labels: Mapping[str, Iterable[str]]) -> LabelScheme:
  """The run's scheme: config.tasks, with each task's classes from config.classes or,
  where that is empty, the distinct labels of `train_labels[task]` sorted."""
  tasks = configured_tasks(config)
  class_names = []
  for task in tasks:
    given = configured_classes(config, task)
    if not given:
      given = tuple(sorted({normalise(x) for x in train_labels[task]} - {""}))
      if len(given) < 2:
        raise SchemeError(
            f"task {task}: the training split holds {len(given)} distinct label(s) "
            f"({', '.join(given) or 'none'}); a task needs two classes or more")
    class_names.append(given)
  return LabelScheme(tasks, tuple(class_names))


def label_ids(scheme: LabelScheme, task: str, texts: Iterable[str]) -> np.ndarray:
  """int32 class ids of label texts (UNKNOWN for ''); SchemeError at the first bad one,
  with its position as `.index`."""
  ids = []
  for index, text in enumerate(texts):
    try:
      ids.append(scheme.class_id(task, text))
    except SchemeError as error:
      error.index = index
      raise
  return np.asarray(ids, np.int32)
