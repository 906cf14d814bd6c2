"""Saving a training run's orbax checkpoints: the last K for resuming, and the best for use.

  WORKDIR/checkpoints/<global step>/  state, data iterator state, meta   (last K)
  WORKDIR/best/<global step>/         state, meta                        (best by the selection metric)
  WORKDIR/config.json                 the resolved config

The best checkpoint is read back only through `artclf.run.checkpoint.restore_best`.

`state` is the `steps.TrainState` (parameters, BatchNorm statistics, optimiser state,
step, RNG); `meta` is JSON: phase index, epoch, the run's best metric, the model spec and
which parameters the phase trained (needed to rebuild the state's structure on restore).
Orbax writes each checkpoint to a temporary folder and renames it when complete, so a
run killed mid-save restarts from the last complete one.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import orbax.checkpoint as ocp

import jax

from artclf.run.checkpoint import BEST_DIR, write_files_digest


class RunCheckpoints:
  """The two checkpoint managers of one workdir."""

  def __init__(self, workdir: str | os.PathLike, keep: int = 2):
    workdir = pathlib.Path(workdir).resolve()
    self.latest = ocp.CheckpointManager(
        workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "data", "meta"))
    self.best = ocp.CheckpointManager(
        workdir / BEST_DIR,
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
        item_names=("state", "meta"))
    self._best_dir = workdir / BEST_DIR
    self._unrecorded_best = None  # a best step saved whose files are not yet recorded

  def _wait_for_best(self) -> None:
    """Waits for the best checkpoint's save, then records its files' digest (once)."""
    self.best.wait_until_finished()
    step, self._unrecorded_best = self._unrecorded_best, None
    if step is not None and jax.process_index() == 0 and (self._best_dir / str(step)).is_dir():
      write_files_digest(self._best_dir / str(step))

  def save(self, global_step: int, state, meta: dict, data_state: dict | None = None) -> None:
    # One manager saves at a time: on several hosts orbax synchronises each save with
    # barriers named by step, and the two managers save the same steps.
    self._wait_for_best()
    self.latest.save(global_step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta),
        data=ocp.args.JsonSave(data_state or {})))

  def save_best(self, global_step: int, state, meta: dict) -> None:
    self.latest.wait_until_finished()
    if global_step in self.best.all_steps():
      # Left by a run killed after it saved this best and before its next checkpoint: the
      # resumed run recomputes the same state, which replaces it.
      self.best.delete(global_step)
    self.best.save(global_step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._unrecorded_best = global_step

  def latest_meta(self) -> tuple[int, dict] | None:
    """(global step, meta) of the newest complete checkpoint, or None."""
    step = self.latest.latest_step()
    if step is None:
      return None
    restored = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return step, restored.meta

  def restore_latest(self, step: int, abstract_state) -> tuple[Any, dict, dict]:
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore(),
        data=ocp.args.JsonRestore()))
    return restored.state, restored.meta, restored.data

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self._wait_for_best()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
