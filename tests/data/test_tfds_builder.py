"""The ancient_art TFDS builder: ArrayRecord splits written and read back without TensorFlow."""

import collections
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from artclf import scheme as scheme_lib
from artclf.data import dataset, tfds_builder


def _labels_csv_counts(source_dir):
  """Per split: number of rows, and per task the class-id counts, straight from the CSV."""
  sizes, label_counts = collections.Counter(), collections.Counter()
  with open(source_dir / "labels.csv", newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      sizes[row["split"]] += 1
      for task in scheme_lib.DEFAULT.tasks:
        label_counts[row["split"], task, scheme_lib.DEFAULT.class_id(task, row[task])] += 1
  return sizes, label_counts


def test_shared_set_round_trip(shared_data_dir, tmp_path):
  path = tfds_builder.build(shared_data_dir, tmp_path)
  sizes, label_counts = _labels_csv_counts(shared_data_dir)
  assert sorted(tfds_builder.split_names(tmp_path)) == sorted(sizes)
  for split, size in sizes.items():
    source = tfds_builder.open_split(tmp_path, split)
    assert len(source) == size
    got = collections.Counter()
    paths = {source[i]["image_path"] for i in range(len(source))}
    ids = dataset.read_labels(source, scheme_lib.DEFAULT)
    for task in scheme_lib.DEFAULT.tasks:
      got.update((split, task, int(i)) for i in ids[task])
    assert len(paths) == size
    assert got == {k: v for k, v in label_counts.items() if k[0] == split}
  # The image bytes are the file, byte for byte.
  record = tfds_builder.open_split(path, "val")[0]
  image_file = shared_data_dir / record["image_path"].decode()
  assert record["image"] == image_file.read_bytes()


def test_custom_folder_metadata_and_splits(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  for name, colour in [("a.png", (255, 0, 0)), ("b.png", (0, 255, 0))]:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), colour).save(buffer, "PNG")
    (source / name).write_bytes(buffer.getvalue())
  (source / "labels.csv").write_text(
      "image,culture,medium,period,split,museum,notes\n"
      "a.png,greek,painting,,fold1,xyz,first\n"
      "b.png,,,late,fold1,xyz,second\n")
  tfds_builder.build(source, tmp_path / "out", splits=("fold1", "fold2"))
  assert tfds_builder.split_names(tmp_path / "out") == ["fold1"]
  records = {r["image_path"]: r for r in tfds_builder.open_split(tmp_path / "out", "fold1")}
  a, b = records[b"a.png"], records[b"b.png"]
  ids = dataset.read_labels([a, b], scheme_lib.DEFAULT)
  assert [ids[t].tolist() for t in ("culture", "medium", "period")] == [
      [1, scheme_lib.UNKNOWN], [1, scheme_lib.UNKNOWN], [scheme_lib.UNKNOWN, 2]]
  assert a["museum"] == b"xyz" and a["object_id"] == b""
  assert (int(a["line"]), int(b["line"])) == (2, 3)
  # Labels stay text among the columns: any scheme reads them.
  assert json.loads(b["metadata_json"]) == {"culture": "", "medium": "", "period": "late",
                                            "museum": "xyz", "notes": "second"}
  pixels = np.asarray(Image.open(io.BytesIO(a["image"])))
  assert pixels[0, 0].tolist() == [255, 0, 0]


def test_split_expressions(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  rows = ["image,culture,medium,period,split"]
  for index, split in enumerate(["train", "train", "val"]):
    Image.new("RGB", (4, 4), (index, 0, 0)).save(source / f"{index}.png")
    rows.append(f"{index}.png,greek,,,{split}")
  (source / "labels.csv").write_text("\n".join(rows) + "\n")
  tfds_builder.build(source, tmp_path / "out")
  assert len(tfds_builder.open_split(tmp_path / "out", "train+val")) == 3
  assert len(tfds_builder.open_split(tmp_path / "out", "train[:1]")) == 1
  with pytest.raises(tfds_builder.SplitError, match="'tset'"):
    tfds_builder.open_split(tmp_path / "out", "train+tset")
