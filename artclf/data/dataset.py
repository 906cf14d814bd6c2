"""The built dataset a config names: built from its labels.csv folder on first use, then opened.

  data_dir = dataset.ensure_built(config.data)            # builds config.data.source_dir once
  source = dataset.open_split(data_dir, "train", max_examples=0)
  source[i]  # {'image': encoded bytes, 'culture': int32, ..., 'image_path': bytes, ...}

Training, evaluation and the benches all open data through here, so that none of them
needs the training module to find a dataset.
"""

from __future__ import annotations

import pathlib

from absl import logging

from artclf.data import tfds_builder


def ensure_built(data_config) -> pathlib.Path:
  """The built dataset folder; builds it from data_config.source_dir on first use.

  On several hosts, process 0 builds and the others wait for it.
  """
  import jax  # pylint: disable=import-outside-toplevel  # Only for the host count.
  data_dir = pathlib.Path(data_config.data_dir)
  try:
    return tfds_builder.dataset_dir(data_dir)
  except FileNotFoundError:
    pass
  if jax.process_index() == 0:
    logging.info("Building the dataset from %s into %s", data_config.source_dir, data_dir)
    tfds_builder.build(data_config.source_dir, data_dir)
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
