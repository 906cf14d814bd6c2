"""Several hosts: N CPU processes joined by jax.distributed on 127.0.0.1.

Two processes with one CPU device each must train exactly what one process with two
devices trains (same global batch): the same parameters and the same validation figures,
through both the cached-feature phase and the uncached phase, and again after every
process was killed mid-run and restarted.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO_ROOT
from tests.data.fixtures import build_synthetic

pytestmark = pytest.mark.slow


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _command(workdir, data_dir, cache_dir, extra=()):
  return [sys.executable, "-m", "artclf.train", "--config=configs/tiny.py",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          "--config.data.max_examples=0", "--config.feature_cache.enabled=always",
          f"--config.feature_cache.dir={cache_dir}", "--config.phase1.epochs=2",
          "--config.phase2.epochs=2", "--config.checkpoint_every_steps=2", *extra]


def _start(workdir, data_dir, cache_dir, processes: int, devices: int, logs: pathlib.Path,
           name: str = "process"):
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT),
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  port = _free_port()
  started = []
  for index in range(processes):
    cluster = ([f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
                f"--process_id={index}"] if processes > 1 else [])
    log = open(logs / f"{name}{index}.log", "w")
    started.append(subprocess.Popen(_command(workdir, data_dir, cache_dir, cluster),
                                    cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
  return started


def _wait(processes, timeout=600):
  for process in processes:
    assert process.wait(timeout=timeout) == 0


def _latest_params(workdir):
  """The trainable parameters of the last checkpoint, onto this process's one device."""
  folder = pathlib.Path(workdir) / "checkpoints"
  step = max(int(p.name) for p in folder.iterdir() if p.name.isdigit())
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as checkpointer:
    saved = checkpointer.metadata(folder / str(step) / "state").item_metadata
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            saved)
    state = checkpointer.restore(folder / str(step) / "state", abstract)
  return step, state["trainable"]


def _val_records(workdir):
  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines if '"split": "val"' in line]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("multihost")
  return build_synthetic(root, num_train=24, num_val=10), root


@pytest.fixture(scope="module")
def one_host_two_devices(data):
  data_dir, root = data
  logs = root / "logs_reference"
  logs.mkdir()
  _wait(_start(root / "reference", data_dir, root / "cache_reference", 1, 2, logs))
  return root / "reference"


def _assert_same_run(workdir, reference):
  step_a, params_a = _latest_params(reference)
  step_b, params_b = _latest_params(workdir)
  assert step_a == step_b == 12  # 4 epochs of 3 steps
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params_a, params_b)
  val_a, val_b = _val_records(reference), _val_records(workdir)
  assert [r["epoch"] for r in val_b] == [1, 2, 3, 4]  # each epoch logged once
  for a, b in zip(val_a, val_b):
    for key in ("mean_balanced_accuracy", "all_tasks_accuracy", "culture_accuracy"):
      assert a[key] == pytest.approx(b[key], abs=1e-9)
  summary_a = json.loads((reference / "train_summary.json").read_text())
  summary_b = json.loads((workdir / "train_summary.json").read_text())
  assert set(summary_a["seconds"]) == set(summary_b["seconds"])  # the time split differs, of course
  del summary_a["seconds"], summary_b["seconds"]
  assert summary_a == summary_b


def test_two_processes_train_what_one_process_with_two_devices_trains(data, one_host_two_devices):
  data_dir, root = data
  logs = root / "logs_two"
  logs.mkdir()
  _wait(_start(root / "two", data_dir, root / "cache_two", 2, 1, logs))
  _assert_same_run(root / "two", one_host_two_devices)
  # One host tells the story: process 1 logs no progress lines.
  assert "epoch 1:" in (logs / "process0.log").read_text()
  assert "epoch 1:" not in (logs / "process1.log").read_text()
  assert (root / "two" / "best").is_dir()


def test_every_process_killed_then_restarted_ends_like_an_uninterrupted_run(
    data, one_host_two_devices):
  data_dir, root = data
  logs = root / "logs_killed"
  logs.mkdir()
  workdir = root / "killed"
  processes = _start(workdir, data_dir, root / "cache_killed", 2, 1, logs)
  deadline = time.time() + 300
  # Kill both once phase 2 (steps 7-12) has a checkpoint, before it ends.
  while time.time() < deadline and all(p.poll() is None for p in processes):
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
    if any(7 <= s < 12 for s in steps):
      break
    time.sleep(0.05)
  assert all(p.poll() is None for p in processes), "the run ended before it could be killed"
  for process in processes:
    process.send_signal(signal.SIGKILL)
    process.wait()
  _wait(_start(workdir, data_dir, root / "cache_killed", 2, 1, logs, name="restarted"))
  _assert_same_run(workdir, one_host_two_devices)
