"""Orbax checkpoints of a training run: the last K for resuming, and the best for use.

  WORKDIR/checkpoints/<global step>/  state, data iterator state, meta   (last K)
  WORKDIR/best/<global step>/         state, meta                        (best by the selection metric)
  WORKDIR/config.json                 the resolved config

`state` is the `steps.TrainState` (parameters, BatchNorm statistics, optimiser state,
step, RNG); `meta` is JSON: phase index, epoch, the run's best metric, the model spec and
which parameters the phase trained (needed to rebuild the state's structure on restore).
Orbax writes each checkpoint to a temporary folder and renames it when complete, so a
run killed mid-save restarts from the last complete one.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import jax
import orbax.checkpoint as ocp


class RunCheckpoints:
  """The two checkpoint managers of one workdir."""

  def __init__(self, workdir: str | os.PathLike, keep: int = 2):
    workdir = pathlib.Path(workdir).resolve()
    self.latest = ocp.CheckpointManager(
        workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "data", "meta"))
    self.best = ocp.CheckpointManager(
        workdir / "best",
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
        item_names=("state", "meta"))

  def save(self, global_step: int, state, meta: dict, data_state: dict | None = None) -> None:
    # One manager saves at a time: on several hosts orbax synchronises each save with
    # barriers named by step, and the two managers save the same steps.
    self.best.wait_until_finished()
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
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def restore_best_state(workdir: str | os.PathLike, abstract_state, attempts: int = 5) -> Any:
  """The state of the best checkpoint, restored onto `abstract_state`'s shapes and shardings.

  Training replaces the best checkpoint while it runs (orbax writes the new step, then
  deletes the old one), so a reader can pick a step that vanishes under it; it then
  looks again for the newest step, a few times.
  """
  best_dir = pathlib.Path(workdir).resolve() / "best"
  for attempt in range(attempts):
    manager = ocp.CheckpointManager(best_dir, item_names=("state", "meta"))
    try:
      step = manager.latest_step()
      if step is None:
        raise NoCheckpointError(f"{workdir} holds no best checkpoint yet: train first, or "
                                "wait for the first epoch to end")
      check_shapes(best_dir / str(step) / "state", abstract_state)
      return manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state))).state
    except (NoCheckpointError, CheckpointMismatch):
      raise
    except Exception:  # pylint: disable=broad-except  # maybe a step deleted while read
      if attempt == attempts - 1 or (best_dir / str(step)).exists():
        raise
      time.sleep(0.05 * (attempt + 1))
    finally:
      manager.close()
  raise AssertionError("unreachable")


class NoCheckpointError(FileNotFoundError):
  """The workdir holds no (best) checkpoint yet."""


class CheckpointMismatch(ValueError):
  """A checkpoint's arrays do not have the shapes the config's model needs."""


def check_shapes(item_dir: pathlib.Path, abstract_state) -> None:
  """Raises CheckpointMismatch naming the first array whose saved shape differs.

  Checked from the checkpoint's metadata before restoring: a restore that fails halfway
  leaves orbax's reads in flight, and they end the process with tracebacks.
  """
  saved = ocp.StandardCheckpointHandler().metadata(item_dir)
  flat_saved = {_name(k): v for k, v in jax.tree_util.tree_flatten_with_path(saved)[0]}
  for key, wanted in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
    name = _name(key)
    have = flat_saved.get(name)
    if have is None:
      raise CheckpointMismatch(f"{item_dir} holds no array {name}")
    if tuple(have.shape) != tuple(wanted.shape):
      raise CheckpointMismatch(f"{item_dir}: {name} was saved with shape {tuple(have.shape)}, "
                               f"the config's model needs {tuple(wanted.shape)}")


def _name(path) -> str:
  """'nets/shared/trunk/stages/0/...': saved metadata keys list indices as strings."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
