"""What predict takes, what it refuses, and how it reads a file: exactly as evaluate does."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import artclf
from artclf import scheme as scheme_lib
from artclf.data import dataset, tfds_builder
from artclf.eval import evaluation
from artclf.run import files as run_files
from artclf.run import trained as trained_model
from artclf.serve import collection, predict, predict_output
from tests.conftest import REPO_ROOT


def _photo(seed=0, size=(160, 120)) -> np.ndarray:
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:size[1], 0:size[0]]
  base = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256], -1)
  return np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)


def _logits(result_probs):
  return np.concatenate([list(result_probs[t]["distribution"].values()) for t in scheme_lib.DEFAULT.tasks])


def test_uint16_bool_and_float_arrays_are_scaled_not_clipped(served_workdir):
  rgb = _photo(1)
  as_uint8 = artclf.predict(rgb, workdir=served_workdir)
  as_uint16 = artclf.predict(rgb.astype(np.uint16) * 257, workdir=served_workdir)
  as_floats = artclf.predict(rgb / 255.0, workdir=served_workdir)
  np.testing.assert_allclose(_logits(as_uint16), _logits(as_uint8), atol=1e-6)
  np.testing.assert_allclose(_logits(as_floats), _logits(as_uint8), atol=1e-6)
  mask = rgb[..., 0] > 128
  as_bool = artclf.predict(mask, workdir=served_workdir)
  as_grey = artclf.predict(mask.astype(np.uint8) * 255, workdir=served_workdir)
  np.testing.assert_allclose(_logits(as_bool), _logits(as_grey), atol=1e-6)


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 0, 3), np.uint8), "holds no pixels"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN or infinite"),
    (np.full((8, 8, 3), 300, np.int32), "values in 0-255, not 300..300"),
    (np.full((8, 8, 3), 2.0, np.float32) * 200, r"\[0, 1\] or \[0, 255\]"),
    (np.zeros((8, 8, 5), np.uint8), r"must be \[H, W\]"),
])
def test_arrays_that_are_not_pictures_are_refused_with_the_reason(served_workdir, array, message):
  with pytest.raises(ValueError, match=message):
    artclf.predict(array, workdir=served_workdir)


def test_a_url_is_refused_with_what_to_do(served_workdir):
  with pytest.raises(ValueError, match="https://example.org/a.jpg: predict reads local files"):
    artclf.predict("https://example.org/a.jpg", workdir=served_workdir)


def test_a_broken_file_in_a_list_is_named_by_its_index(served_workdir, tmp_path):
  good, broken = tmp_path / "good.png", tmp_path / "broken.jpg"
  Image.fromarray(_photo(2)).save(good)
  broken.write_bytes(b"\xff\xd8\xff not a jpeg")
  with pytest.raises(ValueError, match=r"input 1 \(.*broken.jpg\): not a decodable image"):
    artclf.predict([str(good), str(broken)], workdir=served_workdir)


def test_a_large_jpeg_gets_the_same_logits_from_predict_and_evaluate(served_workdir, tmp_path):
  """A 2400 x 1800 JPEG: predict must decode it as evaluate does (JPEG draft mode)."""
  source = tmp_path / "set"
  (source / "images").mkdir(parents=True)
  big = Image.fromarray(_photo(3, (2400, 1800)))
  big.save(source / "images" / "big.jpg", quality=92)
  (source / "labels.csv").write_text("image,culture,medium,period,split\n"
                                     "images/big.jpg,greek,painting,late,test\n")
  built = dataset.build(source, tmp_path / "data")
  model = trained_model.load(served_workdir)
  logits = evaluation.split_outputs(model, tfds_builder.open_split(built, "test"),
                                    flip_tta=False)["logits"]
  view = model.view(predict.read_input(source / "images" / "big.jpg"))
  record = tfds_builder.open_split(built, "test")[0]
  np.testing.assert_array_equal(view, model.view(record["image"]))  # the same pixels ...
  predicted = model.logits(np.stack([view]))
  for task in scheme_lib.DEFAULT.tasks:  # ... so the same logits (up to the batch size's float rounding)
    np.testing.assert_allclose(predicted[task], logits[task], rtol=1e-5, atol=1e-5)
  # ... and a picture decoded at full size would have given other pixels.
  full = model.view(big)
  drafted = model.view((source / "images" / "big.jpg").read_bytes())
  assert np.abs(full.astype(int) - drafted).max() > 0
  from_bytes = artclf.predict((source / "images" / "big.jpg").read_bytes(), model=model)
  from_path = artclf.predict(str(source / "images" / "big.jpg"), model=model)
  assert from_bytes == from_path


def test_temperatures_fitted_with_flip_tta_bring_flip_tta_by_default(served_workdir, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "run"
  shutil.copytree(served_workdir, workdir)
  (workdir / run_files.CALIBRATION_FILE).write_text(json.dumps(
      {"temperatures": {t: 2.0 for t in scheme_lib.DEFAULT.tasks}, "fitted_on": "val", "flip_tta": True}))
  model = trained_model.load(workdir)
  assert model.calibrated_flip_tta and model.temperatures["period"] == 2.0
  views = np.stack([model.view(Image.fromarray(_photo(4)))])
  np.testing.assert_array_equal(model.logits(views)["culture"],
                                model.logits(views, flip_tta=True)["culture"])
  assert not np.array_equal(model.logits(views)["culture"],
                            model.logits(views, flip_tta=False)["culture"])


def _folder_of_photos(folder, count, broken=()):
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(count):
    Image.fromarray(_photo(10 + i, (90, 70))).save(folder / f"p{i:02d}.jpg")
  for name in broken:
    (folder / name).write_bytes(b"broken")
  return folder


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_a_collection_resumes_where_its_output_file_ends(served_workdir, tmp_path, suffix):
  folder = _folder_of_photos(tmp_path / "photos", 3, broken=["zz.jpg"])
  out = tmp_path / f"out{suffix}"
  assert collection.run_cli([str(folder)], str(served_workdir), output=str(out),
                            stream=io.StringIO()) == 1
  _folder_of_photos(folder, 5)  # two more photos arrive
  printed = io.StringIO()
  assert collection.run_cli([str(folder)], str(served_workdir), output=str(out), resume=True,
                            batch_size=2, stream=printed) == 0  # only the new ones: all good
  assert printed.getvalue().count("p0") == 2  # p03 and p04 predicted, the others skipped
  names = sorted(predict_output.read_done(out))
  assert names == sorted(str(p) for p in folder.iterdir())
  if suffix == ".json":
    records = json.loads(out.read_text())  # still one valid JSON array
    assert len(records) == 6 and sum(r["error"] is not None for r in records) == 1
  if suffix == ".csv":
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and rows[0]["culture"] in scheme_lib.DEFAULT.classes["culture"]


def test_an_unwritable_output_fails_before_the_model_loads(served_workdir, tmp_path, capsys):
  folder = _folder_of_photos(tmp_path / "photos", 1)
  status = collection.run_cli([str(folder)], "/no/such/workdir", output="/no/such/dir/out.csv")
  assert status == 2  # the workdir would have failed later, with another message
  assert "cannot write /no/such/dir/out.csv" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_its_config_ends_predict_in_one_line(served_workdir,
                                                                           tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "edited"
  shutil.copytree(served_workdir, workdir)
  config = json.loads((workdir / "config.json").read_text())
  config["model"]["se_ratio"] = 2
  (workdir / "config.json").write_text(json.dumps(config))
  photo = tmp_path / "p.png"
  Image.fromarray(_photo(5)).save(photo)
  result = subprocess.run([sys.executable, "-m", "artclf.predict", f"--workdir={workdir}",
                           str(photo)], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert f"{workdir / 'config.json'} no longer matches the config its checkpoint was trained " \
         "with (model.se_ratio: 16 -> 2)" in last
