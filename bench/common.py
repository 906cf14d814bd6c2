"""Helpers shared by the benches: synthetic batches and interleaved timing."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

TASKS = ("culture", "medium", "period")
NUM_CLASSES = 3


def random_batch(batch_size: int, image_size: int = 224, seed: int = 0):
  """Caffe-normalised-looking NHWC float32 images and integer labels per task."""
  rng = np.random.default_rng(seed)
  images = rng.normal(0.0, 50.0, (batch_size, image_size, image_size, 3)).astype(np.float32)
  labels = {task: rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32) for task in TASKS}
  return images, labels


def interleaved_seconds(runners: dict[str, Callable[[], None]], repetitions: int) -> dict:
  """Runs each runner once per round, rounds alternating, and returns the seconds per run.

  Interleaving keeps the comparison fair when the machine's load changes during the run.
  Each runner must block until its work is done.
  """
  seconds = {name: [] for name in runners}
  for _ in range(repetitions):
    for name, run in runners.items():
      start = time.perf_counter()
      run()
      seconds[name].append(time.perf_counter() - start)
  return seconds


def median(values) -> float:
  return statistics.median(values)
