"""The built dataset a config names: built from its labels.csv folder on first use, then opened.

  data_dir = dataset.ensure_built(config.data)            # builds config.data.source_dir once
  source = dataset.open_split(data_dir, "train", max_examples=0)
  source[i]  # {'image': encoded bytes, 'image_path': bytes, 'metadata_json': bytes, ...}
  train = dataset.open_labelled(data_dir, "train", scheme)  # records + class ids of a scheme

A build remembers a fingerprint of the folder it came from (labels.csv's bytes, and each
listed image's size and modification time). When the folder changes (labels.csv edited,
images replaced, a new version of the shared set), the next run rebuilds instead of
training on the old build. Training, evaluation and the benches all open data through
here, so that none of them needs the training module to find a dataset.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np
from absl import logging

from artclf import scheme as scheme_lib
from artclf.data import labels_csv, tfds_builder

FINGERPRINT_FILE = "artclf_source.json"


def source_fingerprint(source_dir: str | os.PathLike) -> str | None:
  """sha256 of labels.csv and the size and mtime of every image it lists (None: no source)."""
  source_dir = pathlib.Path(source_dir)
  csv_path = source_dir / labels_csv.LABELS_FILE
  if not csv_path.is_file():
    return None
  data = csv_path.read_bytes()
  digest = hashlib.sha256(data)
  try:
    rows = csv.DictReader(io.StringIO(labels_csv.read_text(csv_path)))
    images = sorted({row.get("image") or "" for row in rows})
  except labels_csv.DatasetError:
    images = []  # the build itself will name the problem
  for image in images:
    try:
      stat = (source_dir / image).stat()
      digest.update(f"{image}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except OSError:
      digest.update(f"{image}\0missing\n".encode())
  return digest.hexdigest()


def _record(built: pathlib.Path) -> dict | None:
  """What a build remembers of its source: {'source_dir', 'fingerprint'}, or None."""
  try:
    record = json.loads((built / FINGERPRINT_FILE).read_text())
    return record if {"source_dir", "fingerprint"} <= set(record) else None
  except (OSError, ValueError):
    return None


def _reusable(built: pathlib.Path, source_dir: pathlib.Path) -> tuple[bool, pathlib.Path]:
  """(whether the build can be used as it is, the folder it is checked against)."""
  if built.name != str(tfds_builder.AncientArt.VERSION):
    logging.warning("%s is a build of an older format: rebuilding it from %s", built, source_dir)
    return False, source_dir
  record = _record(built)
  if record is None:
    logging.warning("%s does not record its source (an older build): rebuilding it from %s",
                    built, source_dir)
    return False, source_dir
  recorded = pathlib.Path(record["source_dir"])
  if recorded != source_dir:
    logging.warning("%s was built from %s, not from %s: using it (delete it to build from %s)",
                    built, recorded, source_dir, source_dir)
  fingerprint = source_fingerprint(recorded)
  if fingerprint is None:
    logging.warning("%s not found: using the dataset built from it earlier in %s", recorded, built)
    return True, recorded
  if fingerprint != record["fingerprint"]:
    logging.warning("%s changed since %s was built from it: rebuilding", recorded, built)
    return False, recorded
  return True, recorded


def build(source_dir, data_dir, *, splits=labels_csv.DEFAULT_SPLITS,
          skip_bad_images: bool = False) -> pathlib.Path:
  """The build in `data_dir`: reused while its source is unchanged, else (re)built.

  A build remembers the folder it came from; that folder is the one checked (and
  rebuilt from) when it differs from `source_dir`.
  """
  data_dir, source_dir = pathlib.Path(data_dir), pathlib.Path(source_dir).resolve()
  try:
    built = tfds_builder.dataset_dir(data_dir)
  except FileNotFoundError:
    built = None
  if built is not None:
    reusable, source_dir = _reusable(built, source_dir)
    if reusable:
      return built
    shutil.rmtree(built)
  logging.info("Building the dataset from %s into %s", source_dir, data_dir)
  fingerprint = source_fingerprint(source_dir)
  built = tfds_builder.build(source_dir, data_dir, splits=splits, skip_bad_images=skip_bad_images)
  (built / FINGERPRINT_FILE).write_text(json.dumps(
      {"source_dir": str(source_dir), "fingerprint": fingerprint}))
  return built


def ensure_built(data_config) -> pathlib.Path:
  """The built dataset folder; builds it from data_config.source_dir when missing or stale.

  On several hosts, process 0 builds and the others wait for it.
  """
  import jax  # pylint: disable=import-outside-toplevel  # Only for the host count.
  data_dir = pathlib.Path(data_config.data_dir)
  if jax.process_index() == 0:
    build(data_config.source_dir, data_dir,
          skip_bad_images=data_config.get("skip_bad_images", False))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("dataset built")
  return tfds_builder.dataset_dir(data_dir)


class FirstN:
  """The first n records of a random-access source (config.data.max_examples; 0 = all)."""

  def __init__(self, source, n: int):
    self.source, self.n = source, min(n, len(source)) if n else len(source)

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    if not 0 <= index < self.n:
      raise IndexError(index)
    return self.source[index]


class Rows:
  """The records of a random-access source at the given indices, in that order."""

  def __init__(self, source, indices):
    self.source, self.indices = source, [int(i) for i in indices]

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    return self.source[self.indices[index]]


def column_values(source, column: str) -> list[str]:
  """Each record's value of a labels.csv column (a label or a metadata column such as museum)."""
  return columns_of(source, [column])[column]


def columns_of(source, columns) -> dict[str, list[str]]:
  """{column: each record's value} of labels.csv columns, from one read of the records."""
  values = {column: [] for column in columns}
  for index in range(len(source)):
    record = source[index]
    extra = None
    for column in columns:
      if column in record and isinstance(record[column], bytes):
        values[column].append(record[column].decode())
        continue
      extra = json.loads(record["metadata_json"].decode()) if extra is None else extra
      if column not in extra:
        raise ValueError(f"the dataset has no column {column!r} (its columns: "
                         f"{', '.join(sorted(extra))})")
      values[column].append(str(extra[column]))
  return values


def labels_file(data_dir) -> str:
  """The labels.csv a build came from, for messages."""
  record = _record(tfds_builder.dataset_dir(data_dir)) or {}
  folder = record.get("source_dir")
  return str(pathlib.Path(folder) / labels_csv.LABELS_FILE) if folder else labels_csv.LABELS_FILE


def read_labels(source, scheme: scheme_lib.LabelScheme,
                where: str = labels_csv.LABELS_FILE) -> dict[str, np.ndarray]:
  """{task: int32 [N] class ids (UNKNOWN for empty)} of every record under `scheme`.

  A label outside the scheme raises DatasetError naming `where` (the labels.csv), the
  row's line, the column, the value and the allowed classes.
  """
  try:
    texts = columns_of(source, scheme.tasks)
  except ValueError as error:
    raise labels_csv.DatasetError(f"{where}: {error}; config.tasks names the label columns "
                                  f"({','.join(scheme.tasks)})") from None
  ids = {}
  for task in scheme.tasks:
    try:
      ids[task] = scheme_lib.label_ids(scheme, task, texts[task])
    except scheme_lib.SchemeError as error:
      line = int(source[error.index]["line"])
      raise labels_csv.DatasetError(
          f"{where}, line {line}: column {task}: {error}; add it to config.classes.{task}, or "
          f"leave that empty to take the classes from the training labels") from None
  return ids


@dataclasses.dataclass(frozen=True)
class LabelledSplit:
  """A split's records and their class ids under one scheme."""
  name: str
  source: Any   # random access: len(source), source[i] -> a record dict
  labels: dict[str, np.ndarray]

  def __len__(self) -> int:
    return len(self.source)


def open_labelled(data_dir, split: str, scheme: scheme_lib.LabelScheme, max_examples: int = 0,
                  exclude: str = "") -> LabelledSplit:
  """`open_split`, with the records' class ids under `scheme`."""
  source = open_split(data_dir, split, max_examples, exclude)
  return LabelledSplit(split, source, read_labels(source, scheme, labels_file(data_dir)))


def parse_rule(rule: str) -> tuple[str, set[str]]:
  """'column=value[|value...]' -> (column, values)."""
  column, equals, values = rule.partition("=")
  if not equals or not column.strip() or not values:
    raise ValueError(f"{rule!r} is not a rule of the form column=value (or column=a|b)")
  return column.strip(), {v.strip() for v in values.split("|")}


def filtered(source, rule: str, keep_matching: bool):
  """The records whose column matches the rule (keep_matching) or does not."""
  if not rule:
    return source
  column, values = parse_rule(rule)
  matches = [value in values for value in column_values(source, column)]
  return Rows(source, [i for i, m in enumerate(matches) if m == keep_matching])


def open_split(data_dir, split: str, max_examples: int = 0, exclude: str = ""):
  """A random-access source of `split` (a name or expression such as 'train+val'), without
  the records that match `exclude` ('column=value', see `parse_rule`)."""
  return filtered(FirstN(tfds_builder.open_split(data_dir, split), max_examples), exclude,
                  keep_matching=False)
