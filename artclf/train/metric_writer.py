"""Where training metrics go: the console, a JSONL file and TensorBoard event files.

TensorBoard files are written with tensorboardX (no TensorFlow needed). JSONL records
are what `artclf.eval.plots.load_history` reads for the training-curve plot: per-epoch
records carry 'epoch' and 'split' ('train' or 'val').
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time

from absl import logging


class MetricWriter:
  """Writes scalar records; only process 0 of a multi-host run writes files."""

  def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tensorboard = None
    if enabled:
      workdir = pathlib.Path(workdir)
      workdir.mkdir(parents=True, exist_ok=True)
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
      try:
        from tensorboardX import SummaryWriter  # Optional: JSONL is the record of truth.
        self._tensorboard = SummaryWriter(str(workdir / "tensorboard"))
      except ImportError:
        logging.warning("tensorboardX not installed: no TensorBoard event files")

  def write(self, record: dict, step: int, prefix: str = "") -> None:
    record = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v)
              for k, v in record.items()}
    record = {"step": int(step), "time": time.time(), **record}
    if not self.enabled:
      return
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tensorboard is not None:
      for key, value in record.items():
        if key in ("step", "time", "epoch") or not isinstance(value, (int, float)):
          continue
        if isinstance(value, float) and not math.isfinite(value):
          continue
        self._tensorboard.add_scalar(f"{prefix}{key}", value, int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tensorboard is not None:
      self._tensorboard.close()
