"""Helpers shared by the benches: synthetic batches, interleaved timing, the dataset, headline figures."""

from __future__ import annotations

import pathlib
import statistics
import time
import types
from typing import Callable

import numpy as np

from artclf import scheme as scheme_lib

# The default label scheme (artclf.scheme imports nothing heavy, so the torch worker can use it).
TASKS = scheme_lib.DEFAULT.tasks
NUM_CLASSES = scheme_lib.DEFAULT.num_classes("culture")


def random_batch(batch_size: int, image_size: int = 224, seed: int = 0):
  """Caffe-normalised-looking NHWC float32 images and integer labels per task."""
  rng = np.random.default_rng(seed)
  images = rng.normal(0.0, 50.0, (batch_size, image_size, image_size, 3)).astype(np.float32)
  labels = {task: rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32) for task in TASKS}
  return images, labels


def interleaved_seconds(runners: dict[str, Callable[[], None]], repetitions: int,
                        settle_seconds: float = 0.3) -> dict:
  """Runs each runner once per round, rounds alternating, and returns the seconds per run.

  Interleaving keeps the comparison fair when the machine's load changes during the run.
  Each runner must block until its work is done. Before each timed run, an untimed pause
  of `settle_seconds` lets the previous runner's thread pool stop spinning: XLA's and
  PyTorch's OpenMP workers busy-wait after their work, and on 2 cores that slowed the
  next runner by up to 4x.
  """
  seconds = {name: [] for name in runners}
  for _ in range(repetitions):
    for name, run in runners.items():
      time.sleep(settle_seconds)
      start = time.perf_counter()
      run()
      seconds[name].append(time.perf_counter() - start)
  return seconds


# The figures issue 6 sets targets on, then each task's balanced accuracy.
HEADLINE = ("mean_balanced_accuracy", "mean_accuracy", "all_tasks") + tuple(
    f"{task}_balanced" for task in TASKS)


def headline(report: dict) -> dict[str, float]:
  """The HEADLINE figures of an `artclf.eval.metrics.evaluate_predictions` report."""
  figures = {"mean_balanced_accuracy": report["mean_balanced_accuracy"],
             "mean_accuracy": report["mean_accuracy"],
             "all_tasks": report["all_tasks"]["accuracy"]}
  figures.update({f"{task}_balanced": report["tasks"][task]["balanced_accuracy"]
                  for task in TASKS})
  return figures


def built_dataset(data_dir, source_dir) -> pathlib.Path:
  """The dataset folder in data_dir, built from source_dir (a labels.csv folder) on first use."""
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  return dataset.ensure_built(types.SimpleNamespace(data_dir=data_dir, source_dir=source_dir))


def median(values) -> float:
  return statistics.median(values)


class TorchWorker:
  """The PyTorch reference in a child process (`bench/torch_worker.py`).

  `python`: the interpreter with torch (default $ARTCLF_TORCH_PYTHON, else this one);
  `precision`: 'float32', or 'bfloat16' for CPU autocast.
  """

  def __init__(self, mode: str, batch_size: int, precision: str = "float32",
               python: str | None = None):
    import os  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    python = python or os.environ.get("ARTCLF_TORCH_PYTHON") or sys.executable
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    self.process = subprocess.Popen(
        [python, "-m", "bench.torch_worker", mode, str(batch_size), precision],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if self.process.stdout.readline().strip() != "ready":
      raise RuntimeError(f"torch worker failed to start ({python}: is torch installed there? "
                         "see --torch-python)")

  def runner(self, calls: int = 1) -> Callable[[], None]:
    """A blocking callable that has the worker run `calls` calls."""
    def run():
      self.process.stdin.write(f"{calls}\n")
      self.process.stdin.flush()
      if self.process.stdout.readline().strip() != "done":
        raise RuntimeError("torch worker died")
    return run

  def close(self) -> None:
    self.process.stdin.close()
    self.process.wait()


BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "avx_vnni", "bf16")


def cpu_description() -> str:
  """'MODEL NAME, N cores; bf16 flags: ...' from /proc/cpuinfo (the flags that matter for bf16)."""
  import os  # pylint: disable=import-outside-toplevel
  model, flags = "unknown CPU", set()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      key, _, value = line.partition(":")
      if key.strip() == "model name":
        model = value.strip()
      elif key.strip() in ("flags", "Features"):
        flags.update(value.split())
  except OSError:
    pass
  bf16 = [f for f in BF16_FLAGS if f in flags]
  isa = [f for f in ("avx2", "avx512f") if f in flags]
  return (f"{model}, {os.cpu_count()} cores; {' '.join(isa) or 'no avx2'}; bf16 flags: "
          f"{' '.join(bf16) or 'none'}")
