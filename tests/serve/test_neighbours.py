"""Nearest training photos: saved at the end of training, returned by predict and its CLI."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import artclf
from artclf.data import tfds_builder
from artclf.run import files as run_files
from artclf.run import neighbours
from artclf.run import trained as trained_lib
from artclf.serve import collection


def _train_source(workdir):
  config = run_files.read_config(workdir)
  return tfds_builder.open_split(config.data.data_dir, "train")


def test_training_saves_every_train_photo_with_labels_and_thumbnail(served_workdir):
  index = neighbours.NeighbourIndex.load(served_workdir / neighbours.NEIGHBOURS_FILE)
  source = _train_source(served_workdir)
  assert len(index) == len(source)
  np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-2)
  entry = index.entry(0)
  record = json.loads(source[0]["metadata_json"].decode())
  assert entry["image"] == source[0]["image_path"].decode()
  assert entry["object_id"] == record.get("object_id", "")
  assert set(entry["labels"]) == {"culture", "medium", "period"}
  thumbnail = Image.open(io.BytesIO(index.thumbnail(0)))
  assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 128
  with pytest.raises(IndexError):
    index.thumbnail(len(index))


def test_a_training_photo_is_its_own_nearest_neighbour(served_workdir):
  source = _train_source(served_workdir)
  results = artclf.predict([source[i]["image"] for i in range(4)], workdir=served_workdir,
                           neighbours=3)
  for i, result in enumerate(results):
    found = result["neighbours"]
    assert len(found) == 3
    assert found[0]["row"] == i and found[0]["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert [n["similarity"] for n in found] == sorted((n["similarity"] for n in found),
                                                      reverse=True)
    assert found[0]["image"] == source[i]["image_path"].decode()
  assert "neighbours" not in artclf.predict(source[0]["image"], workdir=served_workdir)


def test_a_run_without_the_file_builds_the_same_index_once(served_workdir, tmp_path):
  copy = tmp_path / "run"
  shutil.copytree(served_workdir, copy)
  (copy / neighbours.NEIGHBOURS_FILE).unlink()
  model = trained_lib.load(copy)
  built = neighbours.index_for(model)
  assert (copy / neighbours.NEIGHBOURS_FILE).exists()
  saved = neighbours.NeighbourIndex.load(served_workdir / neighbours.NEIGHBOURS_FILE)
  np.testing.assert_allclose(built.vectors, saved.vectors, atol=2e-3)
  assert built.entries == saved.entries


def test_cli_writes_the_neighbours_ids(served_workdir, tmp_path):
  source = _train_source(served_workdir)
  (tmp_path / "photo.jpg").write_bytes(source[2]["image"])
  out = tmp_path / "out.csv"
  assert collection.run_cli([str(tmp_path / "photo.jpg")], str(served_workdir), output=str(out),
                            stream=io.StringIO(), neighbours=2) == 0
  with open(out, newline="") as f:
    row, = list(csv.DictReader(f))
  ids = row["neighbours"].split(" ")
  expected = json.loads(source[2]["metadata_json"].decode()).get("object_id") or \
      source[2]["image_path"].decode()
  assert len(ids) == 2 and ids[0] == expected
  # JSON: the whole records.
  assert collection.run_cli([str(tmp_path / "photo.jpg")], str(served_workdir),
                            output=str(tmp_path / "out.json"), stream=io.StringIO(),
                            neighbours=2) == 0
  record, = json.loads((tmp_path / "out.json").read_text())
  assert [n["row"] for n in record["neighbours"]][0] == 2
  assert set(record["neighbours"][0]["labels"]) == {"culture", "medium", "period"}


def test_an_adapted_run_with_the_same_vectors_shares_its_bases_index(served_workdir, tmp_path):
  copy = tmp_path / "adapted"
  shutil.copytree(served_workdir, copy)
  (copy / neighbours.NEIGHBOURS_FILE).unlink()
  model = trained_lib.load(copy)
  index = neighbours.index_for(model, related=[served_workdir])
  assert (copy / neighbours.NEIGHBOURS_FILE).read_bytes() == \
      (served_workdir / neighbours.NEIGHBOURS_FILE).read_bytes()
  assert len(index) == len(_train_source(served_workdir))
  # A run whose vectors differ is not given another's index.
  other = neighbours.NeighbourIndex.load(served_workdir / neighbours.NEIGHBOURS_FILE)
  other.vectors = -other.vectors
  assert not neighbours.reusable(model, other, probes=4)


def test_taught_photos_join_the_index(served_workdir, tmp_path):
  copy = tmp_path / "taught"
  shutil.copytree(served_workdir, copy)
  model = trained_lib.load(copy)
  before = len(neighbours.index_for(model))
  red = Image.new("RGB", (64, 48), (220, 40, 40))
  buffer = io.BytesIO()
  red.save(buffer, "PNG")
  grown = neighbours.add_photos(model, [("mine.png", buffer.getvalue(), {"culture": "roman"})])
  assert len(grown) == before + 1
  assert neighbours.NeighbourIndex.load(copy / neighbours.NEIGHBOURS_FILE).entry(before) == \
      {"row": before, "image": "mine.png", "object_id": "", "museum": "", "title": "",
       "credit": "", "labels": {"culture": "roman"}, "taught": True}
  found = artclf.predict(red, model=model, neighbours=1)["neighbours"][0]
  assert found["row"] == before and found["similarity"] == pytest.approx(1.0, abs=2e-3)
  assert Image.open(io.BytesIO(grown.thumbnail(before))).size == (64, 48)
  assert grown.thumbnail(0) == neighbours.NeighbourIndex.load(
      served_workdir / neighbours.NEIGHBOURS_FILE).thumbnail(0)
