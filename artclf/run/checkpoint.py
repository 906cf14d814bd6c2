"""The best checkpoint of a run: the one restore of a trained model's weights, checked.

  WORKDIR/best/<global step>/state   the model's parameters and BatchNorm statistics
  WORKDIR/best/<global step>/meta    JSON: the step, the phase, the validation report, the
                                     resolved config, the scheme and `params_digest`
  WORKDIR/best/<global step>/artclf_files.sha256
                                     the sha256 of every file above, once orbax has written them

Training saves it (`artclf.train.checkpoints`); everything that uses a trained model
restores it through `restore_best`, which refuses, in one line naming the folder, a
checkpoint whose files are not the ones written (checked before orbax reads anything: a
read of a damaged file leaves orbax's reads in flight, which print tracebacks later), that
does not fit the model, that cannot be read, or whose arrays are not the ones saved (their
sha256 no longer matches `params_digest`; for checkpoints saved before the digests
existed, any NaN or infinite parameter).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

BEST_DIR = "best"
FILES_DIGEST = "artclf_files.sha256"


class NoCheckpointError(FileNotFoundError):
  """The workdir holds no (best) checkpoint yet."""


class CheckpointMismatch(ValueError):
  """A checkpoint's arrays do not have the shapes the config's model needs."""


class CheckpointDamaged(ValueError):
  """A checkpoint that cannot be read, or whose arrays are not the ones saved."""
  # A failed read leaves orbax's reads in flight; a command ends at once after saying so
  # (artclf.runtime.report_error).
  exit_at_once = True


def params_digest(state) -> str:
  """sha256 over every array of a (pure dict) state, in path order: saved with the
  checkpoint, checked on every restore."""
  digest = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  for path, leaf in sorted(leaves, key=lambda item: _name(item[0])):
    array = np.ascontiguousarray(_host_copy(leaf))
    digest.update(f"{_name(path)}:{array.dtype}:{array.shape}\n".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def write_files_digest(step_dir: pathlib.Path) -> None:
  """Records the sha256 of every file of a finished checkpoint, beside them."""
  lines = [f"{_file_sha256(path)}  {path.relative_to(step_dir).as_posix()}"
           for path in sorted(step_dir.rglob("*")) if path.is_file() and path.name != FILES_DIGEST]
  tmp = step_dir / (FILES_DIGEST + ".tmp")
  tmp.write_text("\n".join(lines) + "\n")
  os.replace(tmp, step_dir / FILES_DIGEST)


def verify_files(step_dir: pathlib.Path) -> None:
  """Raises CheckpointDamaged if a file recorded by write_files_digest is missing or changed."""
  record = step_dir / FILES_DIGEST
  if not record.exists():
    return  # saved before the record existed, or killed before writing it
  for line in record.read_text().splitlines():
    digest, _, name = line.partition("  ")
    path = step_dir / name
    if not path.is_file() or _file_sha256(path) != digest:
      raise CheckpointDamaged(f"the best checkpoint {step_dir} is damaged ({name} is "
                              f"{'missing' if not path.is_file() else 'not the file written'}); "
                              "train again, or restore the workdir from a backup")


def _file_sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def best_step(workdir: str | os.PathLike) -> int | None:
  """The step of the newest complete best checkpoint, or None."""
  best_dir = pathlib.Path(workdir).resolve() / BEST_DIR
  if not best_dir.is_dir():
    return None
  manager = ocp.CheckpointManager(best_dir, item_names=("state", "meta"))
  try:
    return manager.latest_step()
  finally:
    manager.close()


def read_best_meta(workdir: str | os.PathLike) -> dict:
  """The best checkpoint's metadata ({} when there is none or it cannot be read: the
  restore then says why)."""
  step = best_step(workdir)
  if step is None:
    return {}
  best_dir = pathlib.Path(workdir).resolve() / BEST_DIR
  try:
    verify_files(best_dir / str(step))
  except CheckpointDamaged:
    return {}  # restore_best names the damage
  manager = ocp.CheckpointManager(best_dir, item_names=("state", "meta"))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored.meta or {})
  except Exception:  # pylint: disable=broad-except  # restore_best names the damage
    return {}
  finally:
    manager.close()


def restore_best(workdir: str | os.PathLike, abstract_state, attempts: int = 5
                 ) -> tuple[Any, dict]:
  """(state, meta) of the best checkpoint, restored onto `abstract_state`'s shapes and
  shardings, and checked (see the module docstring).

  Training replaces the best checkpoint while it runs (orbax writes the new step, then
  deletes the old one), so a reader can pick a step that vanishes under it; it then
  looks again for the newest step, a few times.
  """
  best_dir = pathlib.Path(workdir).resolve() / BEST_DIR
  for attempt in range(attempts):
    step = best_step(workdir)
    if step is None:
      raise NoCheckpointError(f"{workdir} holds no best checkpoint yet: train first, or "
                              "wait for the first epoch to end")
    step_dir = best_dir / str(step)
    try:
      verify_files(step_dir)
      check_shapes(step_dir / "state", abstract_state)
      state, meta = _restore(best_dir, step, abstract_state)
    except (CheckpointMismatch, CheckpointDamaged):
      if step_dir.exists() or attempt == attempts - 1:
        raise
      continue  # replaced by a newer best while read
    except Exception as error:  # pylint: disable=broad-except  # damaged, or deleted while read
      if step_dir.exists() or attempt == attempts - 1:
        raise CheckpointDamaged(f"the best checkpoint {step_dir} cannot be read "
                                f"({_first_line(error)}): it is damaged; train again, or "
                                "restore the workdir from a backup") from None
      time.sleep(0.05 * (attempt + 1))
      continue
    _check_arrays(step_dir, state, meta)
    return state, meta
  raise AssertionError("unreachable")


def _restore(best_dir: pathlib.Path, step: int, abstract_state) -> tuple[Any, dict]:
  manager = ocp.CheckpointManager(best_dir, item_names=("state", "meta"))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored.state, dict(restored.meta or {})
  finally:
    manager.close()


def _check_arrays(step_dir: pathlib.Path, state, meta: dict) -> None:
  saved = meta.get("params_digest")
  if saved is not None:
    if params_digest(state) != saved:
      raise CheckpointDamaged(f"the best checkpoint {step_dir} does not hold the arrays that "
                              "were saved (their sha256 differs): it is damaged; train again, "
                              "or restore the workdir from a backup")
    return
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if not np.isfinite(_host_copy(leaf)).all():
      raise CheckpointDamaged(f"the best checkpoint {step_dir} holds NaN or infinite values "
                              f"in {_name(path)}: it is damaged; train again")


def check_shapes(item_dir: pathlib.Path, abstract_state) -> None:
  """Raises CheckpointMismatch naming the first array whose saved shape differs.

  Checked from the checkpoint's metadata before restoring: a restore that fails halfway
  leaves orbax's reads in flight, and they end the process with tracebacks.
  """
  try:
    saved = ocp.StandardCheckpointHandler().metadata(item_dir)
  except Exception as error:  # pylint: disable=broad-except  # a truncated _METADATA, say
    raise CheckpointDamaged(f"the checkpoint {item_dir} cannot be read "
                            f"({_first_line(error)}): it is damaged") from None
  flat_saved = {_name(k): v for k, v in jax.tree_util.tree_flatten_with_path(saved)[0]}
  for key, wanted in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
    name = _name(key)
    have = flat_saved.get(name)
    if have is None:
      raise CheckpointMismatch(f"{item_dir} holds no array {name}")
    if tuple(have.shape) != tuple(wanted.shape):
      raise CheckpointMismatch(f"{item_dir}: {name} was saved with shape {tuple(have.shape)}, "
                               f"the config's model needs {tuple(wanted.shape)}")


def _host_copy(leaf) -> np.ndarray:
  """A replicated array's values on this host (other hosts' devices cannot be read)."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    return np.asarray(leaf.addressable_data(0))
  return np.asarray(jax.device_get(leaf))


def _name(path) -> str:
  """'nets/shared/trunk/stages/0/...': saved metadata keys list indices as strings."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return (text[0] if text else type(error).__name__)[:200]
