"""A run's folder: a refused resume changes nothing, one writer at a time, clear CLI errors."""

import errno
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from artclf.run import trained as trained_model
from artclf.train import trainer
from artclf.train import workdir as workdir_lib
from configs import tiny
from tests.conftest import REPO_ROOT
from tests.data.fixtures import build_synthetic


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return build_synthetic(tmp_path_factory.mktemp("workdir_data"), num_train=16, num_val=8)


def _config(data_dir, **overrides):
  config = tiny.get_config()
  config.data.data_dir = str(data_dir)
  config.data.max_examples = 0
  config.phase1.epochs, config.phase2.epochs = 1, 0
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def _snapshot(folder: pathlib.Path) -> dict:
  """Every file under `folder`: its bytes' sha256 and modification time."""
  return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_cli(workdir, data_dir, *overrides):
  command = [sys.executable, "-m", "artclf.train", "--config=configs/tiny.py",
             f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
             "--config.data.max_examples=0", "--config.phase1.epochs=1",
             "--config.phase2.epochs=0", *overrides]
  return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=600)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("finished") / "run"
  trainer.train_and_evaluate(_config(data_dir), workdir)
  return workdir


@pytest.mark.parametrize("override, difference", [
    ("--config.model.se_ratio=4", "model.se_ratio: 16 -> 4"),
    ("--config.phase1.learning_rate=0.5", "phase1.learning_rate: 0.01 -> 0.5"),
    ("--config.batch_size=4", "batch_size: 8 -> 4"),
])
def test_a_refused_resume_exits_nonzero_and_changes_no_file(finished_run, data_dir, override,
                                                            difference):
  before = _snapshot(finished_run)
  result = _train_cli(finished_run, data_dir, override)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and difference in last and "nothing in it was changed" in last
  assert _snapshot(finished_run) == before
  trained_model.load(finished_run)  # predict still loads the run


def test_a_longer_phase_and_other_logging_are_accepted_and_continue(data_dir, tmp_path):
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(_config(data_dir), workdir)
  summary = trainer.train_and_evaluate(_config(data_dir, **{"phase1.epochs": 2,
                                                            "log_every_steps": 1}), workdir)
  assert summary["best_step"] is not None
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["phase1"]["epochs"] == 2
  val = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
         if '"split": "val"' in l]
  assert [r["epoch"] for r in val] == [1, 2]


def test_labels_edited_after_the_run_began_refuse_the_resume(tmp_path):
  built = build_synthetic(tmp_path, num_train=16, num_val=8)
  source = tmp_path / "source"
  workdir = tmp_path / "run"
  result = _train_cli(workdir, built, f"--config.data.source_dir={source}")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = (source / "labels.csv").read_text().splitlines()
  lines[1] = lines[1].replace(",egyptian,", ",greek,")  # a label corrected in place
  (source / "labels.csv").write_text("\n".join(lines) + "\n")
  before = _snapshot(workdir)
  result = _train_cli(workdir, built, f"--config.data.source_dir={source}",
                      "--config.phase1.epochs=2")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert "the training data changed since the run" in last and "new --workdir" in last
  assert _snapshot(workdir) == before


def test_a_second_training_on_the_same_workdir_is_refused(data_dir, tmp_path):
  workdir = tmp_path / "run"
  with workdir_lib.locked(workdir):
    with pytest.raises(workdir_lib.WorkdirError, match="in use by another training run"):
      trainer.train_and_evaluate(_config(data_dir), workdir)
  assert not (workdir / "config.json").exists()


def test_paths_in_the_saved_config_are_absolute(data_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(data_dir.parent)
  config = _config(pathlib.Path(data_dir.name))  # relative to the current folder
  trainer.train_and_evaluate(config, tmp_path / "run")
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["data"]["data_dir"] == str(data_dir)
  assert pathlib.Path(saved["feature_cache"]["dir"]).is_absolute()


def test_missing_weights_end_the_train_command_in_one_line(data_dir, tmp_path):
  result = _train_cli(tmp_path / "run", data_dir, "--config.model.pretrained=True")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "error: the tiny trunk has no ImageNet weights: use resnet50, efficientnet_lite0 or "
      "efficientnet_lite2, or model.pretrained=False")


def test_disk_errors_become_one_line_with_the_fix(tmp_path):
  full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints")
  assert "the disk is full (/runs/x/checkpoints)" in str(workdir_lib.describe_os_error(full))
  readonly = OSError(errno.EROFS, "Read-only file system", "/runs/x/config.json")
  assert "choose a writable --workdir" in str(workdir_lib.describe_os_error(readonly))
  # What orbax and tensorstore raise from their save threads: a ValueError with the text.
  tensorstore = ValueError(f'RESOURCE_EXHAUSTED: Error writing local file "{tmp_path}/checkpoints/'
                           '9.orbax-checkpoint-tmp/state/_sharding": Failed writing: "x": Failed '
                           "to write 36045 bytes to file 12: No space left on device")
  found = workdir_lib.disk_error(tensorstore)
  assert found.errno == errno.ENOSPC and found.filename == f"{tmp_path}/checkpoints/9"
  (tmp_path / "checkpoints" / "6").mkdir(parents=True)
  (tmp_path / "best" / "6").mkdir(parents=True)
  message = str(workdir_lib.describe_os_error(found, tmp_path))
  assert message.startswith(f"the disk holding {tmp_path} is full (") and "free of" in message
  assert f"while writing {tmp_path}/checkpoints/9; kept: checkpoint of step 6 in " in message
  assert "best of step 6" in message and workdir_lib.describe_os_error(found).exit_at_once
  assert workdir_lib.disk_error(ValueError("another problem")) is None


def test_library_logs_of_a_full_disk_are_left_to_the_one_line():
  import logging  # pylint: disable=import-outside-toplevel
  from artclf import runtime  # pylint: disable=import-outside-toplevel
  def record(path, message, error=None):
    return logging.LogRecord("absl", logging.ERROR, path, 1, message, (),
                             (type(error), error, None) if error else None)
  keep = runtime._LibraryInfoFilter().filter  # pylint: disable=protected-access
  orbax = "/venv/site-packages/orbax/checkpoint/future.py"
  assert not keep(record(orbax, "Save Finalize thread failed.", ValueError("... No space left on device")))
  assert not keep(record(orbax, "raised", OSError(errno.ENOSPC, "No space left on device")))
  assert keep(record(orbax, "Save Finalize thread failed.", ValueError("something else")))
  assert keep(record("/repo/artclf/train/trainer.py", "No space left on device"))


def test_a_full_disk_ends_training_in_one_line_that_says_what_was_kept(data_dir, tmp_path):
  if os.geteuid() != 0:
    pytest.skip("mounting a small tmpfs needs root")
  disk = tmp_path / "small_disk"
  disk.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(disk)],
                    capture_output=True, check=False).returncode:
    pytest.skip("cannot mount a tmpfs here")
  try:
    result = _train_cli(disk / "run", data_dir, "--config.phase1.epochs=40")
  finally:
    subprocess.run(["umount", str(disk)], check=False)
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if not l.startswith(("I", "W"))]
  assert len(errors) == 2, errors  # the logged line and the printed one
  assert errors[-1].startswith(f"error: the disk holding {disk / 'run'} is full (")
  assert "; kept: " in errors[-1] and "run the same command again to resume" in errors[-1]
