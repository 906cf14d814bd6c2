"""python -m artclf.adapt: a new, complete run from a base run and a corrections CSV."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

import artclf
from artclf.adapt import adapter, corrections, records
from artclf.eval import evaluation
from artclf.run import neighbours
from artclf.run import trained as trained_lib
from tests.adapt import conftest
from tests.conftest import REPO_ROOT


def tree_digest(folder) -> dict:
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def adapted(base_run, tmp_path_factory):
  root = tmp_path_factory.mktemp("adapted")
  before = tree_digest(base_run)
  csv = conftest.write_corrections(root / "collection")
  summary = adapter.adapt(base_run, csv, root / "out")
  return root / "out", summary, before, csv


def test_adapting_teaches_the_held_out_photographs(adapted):
  out, summary, _, _ = adapted
  assert summary["rows_used"] == 20 and summary["rows_holdout"] == 4 and summary["rows_train"] == 16
  # Red photographs are roman, blue ones greek: the base run never saw either.
  assert summary["after"]["culture_accuracy"] == 1.0
  assert summary["after"]["culture_accuracy"] > summary["before"]["culture_accuracy"]
  assert json.loads((out / records.SUMMARY_FILE).read_text())["after"] == summary["after"]


def test_the_base_run_is_not_touched(adapted, base_run):
  _, _, before, _ = adapted
  assert tree_digest(base_run) == before


def test_the_new_run_records_its_lineage(adapted, base_run):
  out, _, _, csv = adapted
  lineage = records.read_lineage(out)
  assert lineage["base"] == str(base_run.resolve())
  assert lineage["csv_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
  assert sorted(lineage["rows_used"] + lineage["rows_holdout"]) == list(range(2, 22))


def test_the_new_run_predicts_evaluates_and_adapts_again(adapted, tmp_path):
  out, _, _, _ = adapted
  trained = trained_lib.load(out)
  assert trained.familiarity is not None and (out / "calibration.json").exists()
  red = conftest.photo(99, (220, 40, 40))
  result = artclf.predict(red, workdir=out)
  assert result["culture"]["label"] == "roman" and not result["unfamiliar"]
  report = evaluation.evaluate(trained, "val", output_dir=tmp_path / "eval")
  assert report["num_images"] == 8
  more = conftest.write_corrections(tmp_path / "more", count=6)
  again = adapter.adapt(out, more, tmp_path / "again", holdout_fraction=0)
  assert again["rows_holdout"] == 0 and again["before"] is None
  # The first adapt's photographs stay taught, but for those the new CSV labels again.
  assert again["rows_earlier"] == 14
  assert records.read_lineage(tmp_path / "again")["base_lineage"]["base"] == str(
      records.read_lineage(out)["base"])


def test_an_existing_out_is_refused_and_an_interrupted_adapt_resumes(base_run, tmp_path):
  csv = conftest.write_corrections(tmp_path / "c", count=6)
  (tmp_path / "taken").mkdir()
  (tmp_path / "taken" / "notes.txt").write_text("mine")
  with pytest.raises(adapter.AdaptError, match="already exists"):
    adapter.adapt(base_run, csv, tmp_path / "taken")
  assert os.listdir(tmp_path / "taken") == ["notes.txt"]
  first = adapter.adapt(base_run, csv, tmp_path / "out", holdout_fraction=0)
  with pytest.raises(adapter.AdaptError, match="a finished adapt"):
    adapter.adapt(base_run, csv, tmp_path / "out", holdout_fraction=0)
  (tmp_path / "out" / records.SUMMARY_FILE).unlink()  # as if killed before the end
  resumed = adapter.adapt(base_run, csv, tmp_path / "out", holdout_fraction=0)
  assert resumed["rows_train"] == first["rows_train"]
  with pytest.raises(adapter.AdaptError, match="already exists"):  # other inputs
    adapter.adapt(base_run, csv, tmp_path / "out", holdout_fraction=0.5)


def test_out_inside_the_base_run_is_refused(base_run, tmp_path):
  csv = conftest.write_corrections(tmp_path / "c", count=4)
  with pytest.raises(adapter.AdaptError, match="never written to"):
    adapter.adapt(base_run, csv, base_run / "adapted")


def test_bad_rows_are_named_and_skipped(base_run, tmp_path):
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "broken.jpg").write_bytes(b"not a jpeg")
  for name in ("x1.jpg", "x2.jpg"):
    (tmp_path / "c" / name).write_bytes(conftest.photo(7, (0, 0, 0)))
  csv = conftest.write_corrections(tmp_path / "c", count=4, extra_lines=[
      "photos/missing.jpg,roman,,,", "x1.jpg,martian,,,", "broken.jpg,greek,,,",
      "x2.jpg,,,,", "photos/p1.jpg,greek,,,"])
  read = corrections.read_corrections(csv, trained_lib.load(base_run).scheme)
  assert len(read) == 4
  assert [s.split(": ", 1)[0].rsplit(", ", 1)[1] for s in read.skipped] == [
      "line 6", "line 7", "line 8", "line 9", "line 10"]
  assert "missing.jpg" in read.skipped[0] and "'martian'" in read.skipped[1]
  assert "broken.jpg" in read.skipped[2] and "no label" in read.skipped[3]
  assert "already on line 3" in read.skipped[4]
  assert all("\n" not in s for s in read.skipped)


def test_absolute_image_paths_are_read(base_run, tmp_path):
  picture = tmp_path / "elsewhere.jpg"
  picture.write_bytes(conftest.photo(1, (10, 200, 10)))
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "corrections.csv").write_text(f"image,culture\n{picture},egyptian\n")
  read = corrections.read_corrections(tmp_path / "c" / "corrections.csv",
                                      trained_lib.load(base_run).scheme)
  assert read.rows[0].image == picture and read.rows[0].labels["culture"] == 0


def test_a_csv_without_a_usable_row_exits_non_zero_and_writes_nothing(base_run, tmp_path):
  (tmp_path / "c").mkdir()
  csv = tmp_path / "c" / "corrections.csv"
  csv.write_text("image,culture\nnowhere.jpg,roman\n")
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  done = subprocess.run([sys.executable, "-m", "artclf.adapt", f"--workdir={base_run}",
                         f"--labels={csv}", f"--out={tmp_path / 'out'}"],
                        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
  assert done.returncode != 0
  errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "no usable row" in errors[0] and "line 2" in errors[0]
  assert "Traceback" not in done.stderr
  assert not (tmp_path / "out").exists()


def test_a_run_that_fine_tuned_trunk_stages_is_adapted(tmp_path):
  base = conftest.train_tiny(tmp_path / "b", phase2_epochs=1)
  csv = conftest.write_corrections(tmp_path / "c", count=8)
  summary = adapter.adapt(base, csv, tmp_path / "out", holdout_fraction=0.25)
  assert summary["rows_holdout"] == 2
  assert artclf.predict(conftest.photo(5, (220, 40, 40)), workdir=tmp_path / "out")["culture"]


def test_the_commands_photos_join_the_new_runs_nearest_photos(base_run, tmp_path):
  csv = conftest.write_corrections(tmp_path / "collection", count=4)
  adapter.adapt(base_run, csv, tmp_path / "out", holdout_fraction=0,
                photos_as_neighbours=True)  # as `python -m artclf.adapt` asks
  model = trained_lib.load(tmp_path / "out")
  index = neighbours.index_for(model, related=[base_run])
  taught = [index.entry(row) for row in range(len(index)) if index.entry(row).get("taught")]
  assert [(e["image"], e["labels"]["culture"]) for e in taught] == [
      ("p0.jpg", "greek"), ("p1.jpg", "roman"), ("p2.jpg", "greek"), ("p3.jpg", "roman")]
  photo = (tmp_path / "collection" / "photos" / "p1.jpg").read_bytes()
  found = artclf.predict(photo, model=model, neighbours=1)["neighbours"][0]
  assert found["image"] == "p1.jpg" and found["similarity"] == pytest.approx(1.0, abs=2e-3)
