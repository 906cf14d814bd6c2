"""The predict CLI's output file and folder walk: one safe CSV writer, resumes that survive a
cut-off last row, another current folder or another run, and every skipped entry named."""

import csv
import io
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from artclf.data import labels_csv
from artclf.serve import collection, predict_output


def _photos(folder: pathlib.Path, names) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  for i, name in enumerate(names):
    pixels = np.random.default_rng(i).integers(0, 256, (40, 50, 3), np.uint8)
    Image.fromarray(pixels).save(folder / name, "PNG")
  return folder


def _run(paths, workdir, out, resume=False, **kwargs):
  return collection.run_cli([str(p) for p in paths], str(workdir), output=str(out),
                            resume=resume, stream=io.StringIO(), **kwargs)


def test_file_names_that_are_formulas_or_hold_control_characters_are_written_as_text(
    served_workdir, tmp_path, monkeypatch):
  folder = _photos(tmp_path / "photos", ["=cmd|calc.png", "@sum.png", "cr\r=1+1.png", "ok.png"])
  out = tmp_path / "out.csv"
  assert _run([folder], served_workdir, out) == 0
  with open(out, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  names = sorted(pathlib.Path(r["image"]).name for r in rows)
  assert names == ["=cmd|calc.png", "@sum.png", "cr\ufffd=1+1.png", "ok.png"]
  assert all(not r["image"].startswith(("=", "+", "-", "@")) for r in rows)
  # A file named as a formula, alone on the command line, starts its cell with an apostrophe.
  monkeypatch.chdir(folder)
  assert _run(["=cmd|calc.png"], served_workdir, tmp_path / "alone.csv") == 0
  with open(tmp_path / "alone.csv", newline="", encoding="utf-8") as f:
    assert next(csv.DictReader(f))["image"] == "'=cmd|calc.png"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_resume_drops_a_row_cut_in_half_and_redoes_it(served_workdir, tmp_path, suffix):
  folder = _photos(tmp_path / "photos", [f"p{i}.png" for i in range(4)])
  out = tmp_path / f"out{suffix}"
  assert _run([folder], served_workdir, out) == 0
  whole = out.read_text(encoding="utf-8")
  cut = whole.rstrip("\n]\r")  # as a full disk leaves it: the last row half written
  out.write_text(cut[:len(cut) - 25], encoding="utf-8", newline="")
  assert _run([folder], served_workdir, out, resume=True) == 0
  if suffix == ".csv":
    with open(out, newline="", encoding="utf-8") as f:
      records = list(csv.DictReader(f))
  elif suffix == ".jsonl":
    records = [json.loads(line) for line in out.read_text().splitlines()]
  else:
    records = json.loads(out.read_text())
  assert sorted(pathlib.Path(r["image"]).name for r in records) == [f"p{i}.png" for i in range(4)]
  assert all(r["error"] in ("", None) for r in records)


def test_a_resume_from_another_folder_or_with_absolute_paths_skips_the_same_images(
    served_workdir, tmp_path, monkeypatch):
  folder = _photos(tmp_path / "photos", [f"p{i}.png" for i in range(3)])
  out = tmp_path / "out.jsonl"
  monkeypatch.chdir(tmp_path)
  assert _run(["photos"], served_workdir, out) == 0
  printed = io.StringIO()
  monkeypatch.chdir(folder)
  assert collection.run_cli([str(folder)], str(served_workdir), output=str(out), resume=True,
                            stream=printed) == 0
  assert "p0" not in printed.getvalue()  # nothing predicted twice
  assert len(out.read_text().splitlines()) == 3


def test_a_resume_into_another_runs_output_is_refused(served_workdir, tmp_path):
  folder = _photos(tmp_path / "photos", ["a.png"])
  out = tmp_path / "out.csv"
  assert _run([folder], served_workdir, out) == 0
  other = tmp_path / "other_run"
  shutil.copytree(served_workdir, other)
  _photos(folder, ["a.png", "b.png"])
  with pytest.raises(predict_output.OutputError, match="holds predictions of another run"):
    _run([folder], other, out, resume=True)


def test_nan_probabilities_are_never_written():
  record = predict_output.finite({"culture": {"probability": float("nan"),
                                              "distribution": {"greek": float("inf")}}})
  assert json.dumps(record, allow_nan=False) == \
      '{"culture": {"probability": null, "distribution": {"greek": null}}}'


def test_the_export_csv_reads_back_through_the_labels_csv_loader(tmp_path):
  from artclf.serve import csv_cells  # pylint: disable=import-outside-toplevel
  (tmp_path / "a.jpg").write_bytes(b"x")
  with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv_cells.CsvWriter(f)
    writer.row(["image", "split", "title"])
    writer.row(["a.jpg", "train", "x\r=1+1+SUM(9),\"quoted\"\n-2"])
  dataset = labels_csv.load_dataset(tmp_path, check_images=False)
  assert dataset.examples[0].metadata["title"] == "x\ufffd=1+1+SUM(9),\"quoted\"\ufffd-2"


def test_a_folder_names_what_it_skipped(served_workdir, tmp_path, capsys):
  folder = _photos(tmp_path / "photos", ["a.png", "b.png"])
  (folder / "c.heic").write_bytes(b"heic")
  (folder / "README").write_text("notes")
  os.mkfifo(folder / "pipe.jpg")
  os.symlink(folder / "loop.jpg", folder / "loop.jpg")
  (folder / "sub").mkdir()
  os.symlink(folder, folder / "sub" / "up")
  assert _run([folder], served_workdir, tmp_path / "out.csv") == 0
  err = capsys.readouterr().err
  assert "predicted 2/7, 5 skipped:" in err
  for name, why in [("c.heic", ".heic is not a supported image type"),
                    ("README", "no file extension"), ("pipe.jpg", "not a regular file"),
                    ("loop.jpg", "a broken link or a link loop"),
                    ("up", "a link to a folder, not followed")]:
    assert f"{name} ({why}" in err


def test_an_unwritable_explain_folder_fails_in_one_line_before_the_model_loads(tmp_path, capsys):
  folder = _photos(tmp_path / "photos", ["a.png"])
  blocked = tmp_path / "blocked"
  blocked.write_text("a file where the folder would go")
  status = collection.run_cli([str(folder)], "/no/such/workdir", explain_dir=str(blocked / "cams"))
  assert status == 2
  assert f"error: cannot write {blocked / 'cams'}" in capsys.readouterr().err
