"""A run's folder: what each file holds, and reading them with one-line errors.

  WORKDIR/config.json        the resolved config, the scheme among it (tasks, classes)
  WORKDIR/best/              the best checkpoint (`artclf.run.checkpoint`)
  WORKDIR/calibration.json   one temperature per head, fitted on the validation split
  WORKDIR/familiarity.npz    the familiarity scorer (`artclf.eval.familiarity`)
  WORKDIR/neighbours.npz     the training photos' pooled vectors (`artclf.run.neighbours`)

Training writes them all (`artclf.train`), and an adapted run writes its own set
(`artclf.adapt`). The best checkpoint's metadata keeps the config it was trained with;
a config.json edited afterwards in anything that changes the model is refused, naming
the changed keys, rather than silently giving other predictions.
"""

from __future__ import annotations

import json
import os
import pathlib

import ml_collections
import numpy as np
from absl import logging

from artclf import scheme as scheme_lib

CONFIG_FILE = "config.json"
CALIBRATION_FILE = "calibration.json"
FAMILIARITY_FILE = "familiarity.npz"

# Settings a run may change when it is resumed: they do not change what it computes.
FREE_TO_CHANGE = (
    "log_every_steps", "checkpoint_every_steps", "checkpoint_every_epochs", "keep_checkpoints",
    "data.worker_count", "data.read_threads", "feature_cache.dir", "weights_dir",
    "weights_tarball",
    # Refitted after training whenever they change (artclf.eval.familiarity).
    "familiarity.enabled", "familiarity.method", "familiarity.shrinkage",
    "familiarity.min_class_count", "familiarity.val_pass_rate",
    "neighbours.enabled", "neighbours.thumbnail_size",
)
# Settings a resumed run may change to train on: the run continues where it was.
EXTENDABLE = ("phase1.epochs", "phase2.epochs",
              "phase1.early_stopping_patience", "phase2.early_stopping_patience")


class RunFileError(ValueError):
  """A file of a run that cannot be used; the message names it and says what to do."""


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """WORKDIR/config.json, checked to be a run's config."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir?")
  try:
    saved = json.loads(path.read_text())
  except (OSError, ValueError) as error:
    raise RunFileError(f"{path} cannot be read ({error}); restore it, or train again") from None
  missing = [key for key in ("model", "data") if not isinstance(saved, dict) or
             not isinstance(saved.get(key), dict)]
  if missing:
    raise RunFileError(f"{path} is not a run's config (no {' or '.join(missing)} settings); "
                       "restore it, or train again")
  return ml_collections.ConfigDict(saved)


def scheme_of(config, path: str | os.PathLike = CONFIG_FILE) -> scheme_lib.LabelScheme:
  """The run's label scheme (the default one for a run saved before schemes)."""
  try:
    return scheme_lib.from_config(config)
  except scheme_lib.SchemeError as error:
    raise RunFileError(f"{path}: {error}") from None


def flat(tree, prefix: str = "") -> dict:
  """{'a.b': value} of a nested dict; tuples as lists, as JSON has them."""
  items = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      items.update(flat(value, name + "."))
    else:
      items[name] = list(value) if isinstance(value, tuple) else value
  return items


def config_differences(saved: dict, new: dict) -> dict[str, tuple]:
  """{dotted key: (saved value, new value)} for every setting that differs."""
  old, now = flat(saved), flat(json.loads(json.dumps(new, default=str)))
  return {key: (old.get(key, "<absent>"), now.get(key, "<absent>"))
          for key in sorted(set(old) | set(now))
          if old.get(key, "<absent>") != now.get(key, "<absent>")}


def check_config_unchanged(workdir: pathlib.Path, config, trained_with: dict | None) -> None:
  """Refuses a config.json that differs from the config the checkpoint was trained with
  (kept in its metadata) in anything but the settings a resume may change."""
  if trained_with is None:
    return  # saved before checkpoints kept their config
  differences = config_differences(trained_with, config.to_dict())
  changed = {k: v for k, v in differences.items() if k not in FREE_TO_CHANGE + EXTENDABLE}
  if changed:
    listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:6])
    raise RunFileError(
        f"{workdir / CONFIG_FILE} no longer matches the config its checkpoint was trained "
        f"with ({listing}); undo the edit (or train a new run with the new settings)")


def read_calibration(workdir: pathlib.Path, scheme: scheme_lib.LabelScheme
                     ) -> tuple[dict[str, float], bool, dict]:
  """(temperature per task, fitted with flip TTA, the whole file) of WORKDIR/calibration.json.

  A run without one predicts uncalibrated probabilities (temperature 1); one that cannot
  be read does too, with a warning naming it.
  """
  temperatures = {task: 1.0 for task in scheme.tasks}
  path = workdir / CALIBRATION_FILE
  if not path.exists():
    return temperatures, False, {}
  try:
    fitted = json.loads(path.read_text())
    given = {task: float(fitted["temperatures"][task]) for task in scheme.tasks}
    if not all(np.isfinite(t) and t > 0 for t in given.values()):
      raise ValueError(f"temperatures must be positive numbers, not {given}")
  except (OSError, ValueError, KeyError, TypeError) as error:
    logging.warning("%s cannot be read (%s): probabilities are uncalibrated", path,
                    str(error)[:200])
    return temperatures, False, {}
  return given, bool(fitted.get("flip_tta", False)), fitted


def write_json(path: pathlib.Path, value: dict) -> None:
  """Writes JSON atomically (a reader never sees half a file); no NaN in the text."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2, sort_keys=True, allow_nan=False))
  os.replace(tmp, path)
