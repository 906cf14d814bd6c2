"""Builds the `ancient_art` TFDS dataset (ArrayRecord, no TensorFlow) from a labels.csv folder.

  python -m artclf.data.build --source_dir=/work/shared/data/ancient_art --data_dir=data

A build already there is reused while its source folder is unchanged, and rebuilt when
labels.csv or an image changed. A folder that breaks the format ends with one line
naming the file, the line and the fix.
"""

import sys
import time

from absl import app, flags, logging

from artclf.data import dataset, labels_csv, tfds_builder

_SOURCE_DIR = flags.DEFINE_string("source_dir", None, "Folder with labels.csv and the images.",
                                  required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Where to write the TFDS dataset.")
_SPLITS = flags.DEFINE_list("splits", ["train", "val", "test"], "Allowed split names.")
_SKIP_BAD_IMAGES = flags.DEFINE_bool(
    "skip_bad_images", False, "Skip (and report) undecodable images instead of failing.")


def main(argv) -> int:
  del argv
  start = time.perf_counter()
  try:
    path = dataset.build(_SOURCE_DIR.value, _DATA_DIR.value, splits=_SPLITS.value,
                         skip_bad_images=_SKIP_BAD_IMAGES.value)
  except (labels_csv.DatasetError, OSError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  counts = {s: len(tfds_builder.open_split(path, s)) for s in tfds_builder.split_names(path)}
  logging.info("built %s in %.1f s: %s", path, time.perf_counter() - start, counts)
  print(f"{path}: {counts} ({time.perf_counter() - start:.1f} s)")
  return 0


if __name__ == "__main__":
  app.run(main)
