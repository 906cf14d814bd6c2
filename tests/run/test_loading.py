"""Loading a run refuses what would predict wrongly, in one line naming the file: a damaged
or truncated checkpoint, a config.json edited after training or emptied; and warns, then
goes on without them, for a damaged calibration.json or familiarity.npz."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from artclf.run import checkpoint, files, trained
from artclf.train import trainer
from configs import tiny
from tests.conftest import REPO_ROOT
from tests.data.fixtures import build_synthetic


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("loading")
  config = tiny.get_config()
  config.data.data_dir = str(build_synthetic(root, num_train=16, num_val=8))
  config.data.max_examples = 0
  config.phase1.epochs, config.phase2.epochs = 1, 0
  trainer.train_and_evaluate(config, root / "run")
  return root / "run"


@pytest.fixture()
def run_copy(tiny_run, tmp_path):
  shutil.copytree(tiny_run, tmp_path / "run")
  return tmp_path / "run"


def _array_files(workdir):
  step_dir = next((workdir / checkpoint.BEST_DIR).iterdir())
  return step_dir, sorted(p for p in (step_dir / "state").rglob("*")
                          if p.is_file() and p.parent.name == "d")


def _predict_cli(workdir, tmp_path, *args):
  photo = tmp_path / "photo.png"
  from PIL import Image  # pylint: disable=import-outside-toplevel
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(photo)
  return subprocess.run([sys.executable, "-m", "artclf.predict", f"--workdir={workdir}",
                         str(photo), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=False,
                        timeout=600)


def _one_line_error(result) -> str:
  assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
  return result.stderr.strip().splitlines()[-1]


def test_the_saved_digest_matches_what_is_restored(tiny_run):
  meta = checkpoint.read_best_meta(tiny_run)
  assert len(meta["params_digest"]) == 64
  assert meta["config"]["model"]["trunk"] == "tiny" and meta["scheme"]["tasks"]
  trained.load(tiny_run)  # restores, recomputes the digest, compares: no error


def test_flipped_bytes_in_the_checkpoint_are_refused_not_predicted(run_copy, tmp_path):
  step_dir, arrays = _array_files(run_copy)
  for path in arrays:  # flip a byte in the middle of every array file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
  with pytest.raises(checkpoint.CheckpointDamaged, match=str(step_dir)):
    trained.load(run_copy)
  last = _one_line_error(_predict_cli(run_copy, tmp_path, f"--output={tmp_path / 'out.json'}"))
  assert str(step_dir) in last and "damaged" in last
  assert not (tmp_path / "out.json").exists() or "NaN" not in (tmp_path / "out.json").read_text()


def test_the_server_refuses_to_start_on_a_damaged_checkpoint(run_copy):
  pytest.importorskip("fastapi", reason="the app extra is not installed")
  _, arrays = _array_files(run_copy)
  arrays[0].write_bytes(arrays[0].read_bytes()[:-7] + b"garbage")
  result = subprocess.run([sys.executable, "-m", "artclf.serve", f"--workdir={run_copy}",
                           "--port=0"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=False,
                          timeout=600)
  assert "damaged" in _one_line_error(result)


@pytest.mark.parametrize("name", ["_CHECKPOINT_METADATA", "state/_METADATA"])
def test_a_truncated_checkpoint_metadata_file_is_named(run_copy, name):
  step_dir, _ = _array_files(run_copy)
  path = step_dir / name
  path.write_bytes(path.read_bytes()[:10])
  with pytest.raises(ValueError, match="damaged|cannot be read") as raised:
    trained.load(run_copy)
  assert "\n" not in str(raised.value)


def test_an_edited_config_is_refused_naming_the_changed_keys(run_copy, tmp_path):
  config = json.loads((run_copy / "config.json").read_text())
  config["data"]["augment"]["image_size"] = 48
  config["model"]["use_se"] = False
  (run_copy / "config.json").write_text(json.dumps(config))
  last = _one_line_error(_predict_cli(run_copy, tmp_path))
  assert "no longer matches the config its checkpoint was trained with" in last
  assert "data.augment.image_size: 32 -> 48" in last and "model.use_se: True -> False" in last


@pytest.mark.parametrize("text", ["{}", "[1, 2]", "{\"model\": 3", ""])
def test_an_empty_or_broken_config_json_is_one_line(run_copy, tmp_path, text):
  (run_copy / "config.json").write_text(text)
  with pytest.raises(files.RunFileError, match="config.json"):
    trained.load(run_copy)
  assert "config.json" in _one_line_error(_predict_cli(run_copy, tmp_path))


def test_a_damaged_calibration_or_familiarity_file_warns_and_is_left_out(run_copy, caplog):
  reference = trained.load(run_copy)
  assert reference.familiarity is not None
  assert any(t != 1.0 for t in reference.temperatures.values())
  calibration = run_copy / files.CALIBRATION_FILE
  calibration.write_text(calibration.read_text()[:25])
  familiarity = run_copy / files.FAMILIARITY_FILE
  familiarity.write_bytes(familiarity.read_bytes()[:100])
  with caplog.at_level("WARNING"):
    loaded = trained.load(run_copy)
  assert loaded.familiarity is None
  assert all(t == 1.0 for t in loaded.temperatures.values())
  text = caplog.text
  assert f"{calibration} cannot be read" in text and f"{familiarity} cannot be read" in text


def test_evaluate_on_a_read_only_workdir_says_where_to_write(tiny_run, tmp_path):
  if os.geteuid() == 0:
    # root writes through file modes; a run folder replaced by a file is unwritable for all.
    blocked = tmp_path / "eval_val"
    blocked.write_text("a file where the report folder would go")
    output = blocked
  else:
    output = tmp_path / "ro" / "eval_val"
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
  config = files.read_config(tiny_run)
  result = subprocess.run([sys.executable, "-m", "artclf.evaluate", f"--workdir={tiny_run}",
                           "--split=val", f"--output_dir={output}",
                           f"--data_dir={config.data.data_dir}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
  last = _one_line_error(result)
  assert f"cannot write the report to {output}" in last and "--output_dir" in last
