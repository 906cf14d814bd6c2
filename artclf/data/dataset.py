"""The built dataset a config names: built from its labels.csv folder on first use, then opened.

  data_dir = dataset.ensure_built(config.data)            # builds config.data.source_dir once
  source = dataset.open_split(data_dir, "train", max_examples=0)
  source[i]  # {'image': encoded bytes, 'culture': int32, ..., 'image_path': bytes, ...}

A build remembers a fingerprint of the folder it came from (labels.csv's bytes, and each
listed image's size and modification time). When the folder changes (labels.csv edited,
images replaced, a new version of the shared set), the next run rebuilds instead of
training on the old build. Training, evaluation and the benches all open data through
here, so that none of them needs the training module to find a dataset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pathlib
import shutil

from absl import logging

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


def _built_fingerprint(built: pathlib.Path) -> str | None:
  try:
    return json.loads((built / FINGERPRINT_FILE).read_text())["fingerprint"]
  except (OSError, ValueError, KeyError):
    return None


def _needs_build(data_dir: pathlib.Path, source_dir, fingerprint: str | None) -> bool:
  try:
    built = tfds_builder.dataset_dir(data_dir)
  except FileNotFoundError:
    return True
  if fingerprint is None:
    logging.warning("%s not found: using the dataset built earlier in %s", source_dir, built)
    return False
  if _built_fingerprint(built) != fingerprint:
    logging.warning("%s changed since %s was built from it: rebuilding", source_dir, built)
    shutil.rmtree(built)
    return True
  return False


def build(source_dir, data_dir, *, splits=labels_csv.DEFAULT_SPLITS,
          skip_bad_images: bool = False) -> pathlib.Path:
  """The build of `source_dir` in `data_dir`: reused if its fingerprint matches, else made."""
  data_dir = pathlib.Path(data_dir)
  fingerprint = source_fingerprint(source_dir)
  if not _needs_build(data_dir, source_dir, fingerprint):
    return tfds_builder.dataset_dir(data_dir)
  logging.info("Building the dataset from %s into %s", source_dir, data_dir)
  built = tfds_builder.build(source_dir, data_dir, splits=splits, skip_bad_images=skip_bad_images)
  (built / FINGERPRINT_FILE).write_text(json.dumps(
      {"source_dir": str(pathlib.Path(source_dir).resolve()), "fingerprint": fingerprint}))
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


def open_split(data_dir, split: str, max_examples: int = 0):
  """A random-access source of `split` (a name or expression such as 'train+val')."""
  return FirstN(tfds_builder.open_split(data_dir, split), max_examples)
