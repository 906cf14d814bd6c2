"""predict (function and CLI), Grad-CAM and evaluate, on a tiny model trained here."""

import csv
import io
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

import artclf
from artclf import scheme as scheme_lib
from artclf.data import tfds_builder
from artclf.eval import evaluation
from artclf.run import files as run_files
from artclf.run import trained as trained_model
from artclf.serve import collection, gradcam, predict
from artclf.train import trainer
from configs import tiny
from tests.data import fixtures as data_fixtures


@pytest.fixture(scope="module")
def tiny_workdir(served_workdir):
  return served_workdir  # the tiny model trained once for tests/serve (conftest.py)


def _picture(seed=0, size=(80, 60)):
  rng = np.random.default_rng(seed)
  return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_predict_gives_distributions_that_sum_to_one(tiny_workdir):
  results = artclf.predict([_picture(0), _picture(1)], workdir=tiny_workdir)
  assert len(results) == 2
  for result in results:
    assert set(result) == set(scheme_lib.DEFAULT.tasks) | {"familiarity", "unfamiliar"}
    for task in scheme_lib.DEFAULT.tasks:
      distribution = result[task]["distribution"]
      assert list(distribution) == list(scheme_lib.DEFAULT.classes[task])
      assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-5)
      assert all(0.0 <= p <= 1.0 for p in distribution.values())
      assert result[task]["label"] == max(distribution, key=distribution.get)
      assert result[task]["probability"] == max(distribution.values())


def test_familiarity_of_the_validation_photos_is_their_rank_among_them(tiny_workdir):
  # Training fitted the scorer and ranked the validation views; predict must score the
  # same photos identically, so their familiarities are exactly 0, 1/n, ..., (n-1)/n.
  config = run_files.read_config(tiny_workdir)
  source = tfds_builder.open_split(config.data.data_dir, "val")
  results = artclf.predict([source[i]["image"] for i in range(len(source))], workdir=tiny_workdir)
  scores = sorted(result["familiarity"] for result in results)
  np.testing.assert_allclose(scores, np.arange(len(source)) / len(source), atol=1e-6)
  assert [r["unfamiliar"] for r in results].count(True) == 1  # the least familiar of 8 (< 5%)


def test_same_image_as_path_pil_and_array_gives_the_same_answer(tiny_workdir, tmp_path):
  picture = _picture(3, (120, 90))
  path = tmp_path / "photo.png"
  picture.save(path)
  from_path = artclf.predict(str(path), workdir=tiny_workdir)
  from_pil = artclf.predict(picture, workdir=tiny_workdir)
  from_array = artclf.predict(np.asarray(picture), workdir=tiny_workdir)
  from_floats = artclf.predict(np.asarray(picture) / 255.0, workdir=tiny_workdir)
  for other in (from_pil, from_array, from_floats):
    for task in scheme_lib.DEFAULT.tasks:
      assert other[task]["label"] == from_path[task]["label"]
      np.testing.assert_allclose(list(other[task]["distribution"].values()),
                                 list(from_path[task]["distribution"].values()), atol=1e-5)


def test_predict_refuses_bad_input_clearly(tiny_workdir):
  with pytest.raises(TypeError, match="cannot predict on a dict"):
    artclf.predict({"not": "an image"}, workdir=tiny_workdir)
  with pytest.raises(ValueError, match="workdir"):
    artclf.predict(_picture())


def test_cli_predicts_a_folder_and_reports_the_corrupt_file(tiny_workdir, tmp_path, capsys):
  folder = tmp_path / "photos"
  folder.mkdir()
  _picture(5).save(folder / "a.jpg")
  _picture(6).save(folder / "c.png")
  (folder / "b.jpg").write_bytes(b"\xff\xd8\xff this is not really a jpeg")
  out = io.StringIO()
  status = collection.run_cli([str(folder)], str(tiny_workdir), output=str(tmp_path / "out.json"),
                           stream=out)
  assert status == 1  # one input failed
  table = out.getvalue().splitlines()
  assert len(table) == 4  # header + three images, in folder order
  assert "a.jpg" in table[1] and "ERROR" not in table[1]
  assert "b.jpg" in table[2] and "ERROR" in table[2]
  assert "c.png" in table[3] and "ERROR" not in table[3]
  records = json.loads((tmp_path / "out.json").read_text())
  assert [r["error"] is None for r in records] == [True, False, True]
  assert records[0]["culture"]["label"] in scheme_lib.DEFAULT.classes["culture"]

  # All inputs readable: exit status 0, and CSV output.
  (folder / "b.jpg").unlink()
  assert collection.run_cli([str(folder)], str(tiny_workdir), output=str(tmp_path / "out.csv"),
                         stream=io.StringIO()) == 0
  assert (tmp_path / "out.csv").read_text().count("\n") == 3
  # The familiarity columns: the CLI's rows carry what artclf.predict says of each file.
  with open(tmp_path / "out.csv", newline="") as f:
    rows = {pathlib.Path(r["image"]).name: r for r in csv.DictReader(f)}
  for name in ("a.jpg", "c.png"):
    expected = artclf.predict(str(folder / name), workdir=tiny_workdir)
    assert float(rows[name]["familiarity"]) == pytest.approx(expected["familiarity"], abs=1e-4)
    assert rows[name]["unfamiliar"] == ("true" if expected["unfamiliar"] else "false")


def test_gradcam_has_the_picture_size_and_values_in_unit_interval(tiny_workdir):
  model = predict.load_model(tiny_workdir)
  picture = _picture(7, (97, 61))
  heatmaps = gradcam.explain(model, picture)
  assert set(heatmaps) == set(scheme_lib.DEFAULT.tasks)
  for heatmap in heatmaps.values():
    assert heatmap.shape == (61, 97)
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
  overlay = gradcam.overlay(picture, heatmaps["culture"])
  assert overlay.size == picture.size


def test_gradcam_placement_maps_the_crop_back_onto_the_picture():
  cam = np.ones((7, 7), np.float32)
  # A 300 x 200 picture: shorter side 200 -> 256, crop 224 of 256 = 175 px of the picture.
  placed = gradcam.to_picture(cam, (300, 200), image_size=224)
  assert placed.shape == (200, 300)
  columns = np.flatnonzero(placed.max(axis=0) > 0.5)
  rows = np.flatnonzero(placed.max(axis=1) > 0.5)
  assert columns[0] == pytest.approx((300 - 175) / 2, abs=1.5)
  assert len(columns) == pytest.approx(175, abs=2) and len(rows) == pytest.approx(175, abs=2)


def test_evaluate_writes_report_tables_and_pictures(tiny_workdir, tmp_path):
  out = io.StringIO()
  config = run_files.read_config(tiny_workdir)
  report = evaluation.evaluate(trained_model.load(tiny_workdir), split="val",
                               data_dir=config.data.data_dir, output_dir=tmp_path / "eval",
                               stream=out)
  for task in scheme_lib.DEFAULT.tasks:
    assert (tmp_path / "eval" / f"confusion_{task}.png").exists()
    matrix = np.asarray(report["tasks"][task]["confusion_matrix"])
    assert matrix.sum() == report["tasks"][task]["num_known"]
  assert (tmp_path / "eval" / "training_curves.png").exists()
  saved = json.loads((tmp_path / "eval" / "report.json").read_text())
  assert saved["mean_accuracy"] == pytest.approx(report["mean_accuracy"])
  assert "study" in (tmp_path / "eval" / "results.md").read_text().lower()
  # Training fitted the temperatures on val: they lower val's NLL, and evaluate reports them.
  calibration = json.loads((tiny_workdir / run_files.CALIBRATION_FILE).read_text())
  assert set(calibration["temperatures"]) == set(scheme_lib.DEFAULT.tasks)
  for task in scheme_lib.DEFAULT.tasks:
    c = report["calibration"]["tasks"][task]
    assert c["temperature"] == pytest.approx(calibration["temperatures"][task])
    assert c["val_nll_after"] <= c["val_nll_before"] + 1e-9
  assert "culture" in out.getvalue()


def test_checkpoint_saved_on_8_devices_predicts_on_1(tmp_path):
  """A run sharded over a mesh (as on a GPU/TPU host) loads on a single-device machine."""
  import os
  import subprocess
  import sys
  import jax
  from tests.conftest import REPO_ROOT
  data_dir = data_fixtures.build_synthetic(tmp_path, num_train=16, num_val=8)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(REPO_ROOT))
  subprocess.run([sys.executable, "-m", "artclf.train", "--config=configs/tiny.py",
                  f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={data_dir}",
                  "--config.data.max_examples=0", "--config.phase1.epochs=1",
                  "--config.phase2.epochs=0"], cwd=REPO_ROOT, env=env, check=True,
                 capture_output=True, timeout=600)
  assert len(jax.devices()) == 1
  result = artclf.predict(_picture(9), workdir=tmp_path / "run")
  assert sum(result["period"]["distribution"].values()) == pytest.approx(1.0, abs=1e-5)
