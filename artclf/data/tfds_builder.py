"""TFDS builder `ancient_art`: a labelled-dataset folder -> ArrayRecord splits, no TensorFlow.

Each split in labels.csv becomes one ArrayRecord split. A record holds:

  image        the image file's bytes exactly as on disk (decoded later with
               Pillow by `artclf.data.images`; TFDS's Image feature would need
               TensorFlow to encode, so the bytes go in a numpy object Tensor)
  image_path   path relative to the source folder
  line         the row's line in labels.csv, for messages about its labels
  object_id, museum, title, license, source_url
               text ('' when the source has no such column)
  metadata_json
               every labels.csv column of the row but image and split (the labels
               among them), as written, as a JSON object

Labels stay text: a run's scheme (`artclf.scheme`) turns them into class ids when it
reads a split (`artclf.data.dataset.read_labels`), so one build serves any scheme.

The source folder is a builder argument (`AncientArt(source_dir=...)`), so any
folder in the labels.csv format builds the same way; build different folders
into different data_dirs. Records within a split are in TFDS's deterministic
shuffled order (keyed by image path), not the CSV order.

Read back with `open_split(data_dir, split)`, which needs neither TensorFlow nor
the source folder.
"""

import json
import os
import pathlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from artclf.data import labels_csv

NAME = "ancient_art"
# Metadata columns with their own feature; any others only in metadata_json.
TEXT_COLUMNS = ("object_id", "museum", "title", "license", "source_url")


class AncientArt(tfds.core.GeneratorBasedBuilder):
  """Labelled photos of ancient art, with their labels as text."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "Encoded image bytes, three int32 labels (-1 unknown), metadata.",
                   "2.0.0": "Labels as text among the columns (any tasks); the labels.csv line."}

  # TFDS finds a builder's source file through `importlib_resources`, a package it
  # imports but does not declare for Python >= 3.9; saying where the file is
  # avoids that import (and needs nothing else).
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)

  def __init__(self, *, source_dir: str | os.PathLike | None = None,
               splits=labels_csv.DEFAULT_SPLITS, skip_bad_images: bool = False,
               **kwargs):
    self._source_dir = None if source_dir is None else pathlib.Path(source_dir)
    self._splits = tuple(splits)
    self._skip_bad_images = skip_bad_images
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    features = {
        "image": tfds.features.Tensor(shape=(), dtype=np.object_),
        "image_path": tfds.features.Text(),
        "metadata_json": tfds.features.Text(),
        "line": tfds.features.Tensor(shape=(), dtype=np.int32),
    }
    features.update({column: tfds.features.Text() for column in TEXT_COLUMNS})
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict(features),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the source is a local folder.
    if self._source_dir is None:
      raise ValueError(f"{NAME}: building needs source_dir=<folder with labels.csv>")
    dataset = labels_csv.load_dataset(self._source_dir, splits=self._splits,
                                      skip_bad_images=self._skip_bad_images)
    self.info.metadata.update({
        "source_dir": str(self._source_dir.resolve()),
        "metadata_columns": list(dataset.metadata_columns),
        "skipped_bad_images": [b.image for b in dataset.bad_images],
    })
    present = [s for s in self._splits if dataset.split(s)]
    return {s: self._generate_examples(dataset, s) for s in present}

  def _generate_examples(self, dataset: labels_csv.LabelledDataset, split: str):
    for example in dataset.split(split):
      record = {
          "image": dataset.image_path(example).read_bytes(),
          "image_path": example.image,
          "metadata_json": json.dumps(example.metadata, ensure_ascii=False, sort_keys=True),
          "line": example.line,
      }
      record.update({c: example.metadata.get(c, "") for c in TEXT_COLUMNS})
      yield example.image, record


def build(source_dir: str | os.PathLike, data_dir: str | os.PathLike, *,
          splits=labels_csv.DEFAULT_SPLITS, skip_bad_images: bool = False) -> pathlib.Path:
  """Builds (or reuses, if already built) the dataset; returns its versioned folder."""
  builder = AncientArt(source_dir=source_dir, data_dir=os.fspath(data_dir), splits=splits,
                       skip_bad_images=skip_bad_images)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return pathlib.Path(builder.data_dir)


def dataset_dir(data_dir: str | os.PathLike) -> pathlib.Path:
  """The versioned folder of a build: data_dir itself, or the newest data_dir/ancient_art/X.Y.Z."""
  data_dir = pathlib.Path(data_dir)
  if (data_dir / "dataset_info.json").is_file():
    return data_dir
  versions = [p for p in (data_dir / NAME).glob("*.*.*") if (p / "dataset_info.json").is_file()]
  if not versions:
    raise FileNotFoundError(f"no built {NAME} dataset under {data_dir} "
                            f"(build it with python -m artclf.data.build)")
  return max(versions, key=lambda p: tuple(int(x) for x in p.name.split(".")))


def open_split(data_dir: str | os.PathLike, split: str):
  """A random-access source of one split: len(), source[i] -> dict of numpy values.

  `split` is a name or a TFDS split expression: "train+val" (to fit a final model on
  both), "train[:100]". Text features come back as bytes; `image` is the encoded image file.
  """
  builder = tfds.builder_from_directory(os.fspath(dataset_dir(data_dir)))
  for name in split.split("+"):
    name = name.strip().split("[")[0]
    if name not in builder.info.splits:
      raise SplitError(f"the dataset in {data_dir} has no split {name!r} (in {split!r}); it has "
                       f"{', '.join(builder.info.splits)}: give labels.csv rows of that split, "
                       "or choose another (config.data.train_split / val_split)")
  return builder.as_data_source(split=split)


class SplitError(ValueError):
  """A split that the built dataset does not hold."""


def split_names(data_dir: str | os.PathLike) -> list[str]:
  return list(tfds.builder_from_directory(os.fspath(dataset_dir(data_dir))).info.splits)
