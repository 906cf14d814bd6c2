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
  """Writes scalar records; only process 0 of a multi-host run writes files.

  A run resumed from a checkpoint at `resume_step` first drops the records logged after
  that step (the killed run got further than its last checkpoint), so that the log of a
  resumed run reads like the log of an uninterrupted one.
  """

  def __init__(self, workdir: str | os.PathLike, enabled: bool = True,
               resume_step: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._tensorboard = None
    if enabled:
      workdir = pathlib.Path(workdir)
      workdir.mkdir(parents=True, exist_ok=True)
      path = workdir / "metrics.jsonl"
      if resume_step is not None:
        _drop_records_after(path, resume_step)
      self._jsonl = open(path, "a", encoding="utf-8")
      try:
        from tensorboardX import SummaryWriter  # Optional: JSONL is the record of truth.
        # purge_step hides events logged after the checkpoint we resume from.
        purge = None if resume_step is None else resume_step + 1
        # A deep queue: its writer thread stops at a failed write (a full disk), and then
        # each event waits for a place in the queue; `write` notices the stop before then.
        self._tensorboard = SummaryWriter(str(workdir / "tensorboard"), purge_step=purge,
                                          max_queue=1000)
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
    if self._tensorboard is not None and not self._tensorboard_alive():
      logging.warning("TensorBoard's event writer stopped (a write failed: a full disk?); "
                      "metrics go to metrics.jsonl only from here")
      self._tensorboard = None  # not closed: closing waits on the stopped writer
    if self._tensorboard is not None:
      for key, value in record.items():
        if key in ("step", "time", "epoch") or not isinstance(value, (int, float)):
          continue
        if isinstance(value, float) and not math.isfinite(value):
          continue
        self._tensorboard.add_scalar(f"{prefix}{key}", value, int(step))

  def _tensorboard_alive(self) -> bool:
    """Whether tensorboardX's writer thread still runs. It stops at a failed write (a full
    disk), and adding events would then block for ever once its queue is full."""
    event_writer = getattr(self._tensorboard.file_writer, "event_writer", None)
    worker = getattr(event_writer, "_worker", None)
    return worker is None or worker.is_alive()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tensorboard is not None and self._tensorboard_alive():
      self._tensorboard.close()


def _drop_records_after(path: pathlib.Path, step: int) -> None:
  """Rewrites a JSONL log without the records whose 'step' is above `step` (atomically)."""
  if not path.exists():
    return
  kept = []
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      if json.loads(line).get("step", 0) <= step:
        kept.append(line)
    except ValueError:
      continue  # a line cut off by the kill
  tmp = path.with_suffix(".jsonl.tmp")
  tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
  os.replace(tmp, path)
