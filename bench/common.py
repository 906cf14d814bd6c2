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
  """The PyTorch reference in a child process (`bench/torch_worker.py`)."""

  def __init__(self, mode: str, batch_size: int):
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    self.process = subprocess.Popen(
        [sys.executable, "-m", "bench.torch_worker", mode, str(batch_size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if self.process.stdout.readline().strip() != "ready":
      raise RuntimeError("torch worker failed to start")

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
