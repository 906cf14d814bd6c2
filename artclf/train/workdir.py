"""A run's folder: one writer at a time, and a resume that never damages the run.

Before anything in a workdir is written, `open_run` takes an exclusive lock on the
folder (a second training on it is refused) and compares the new config with the run's
own `config.json`. A resume may change only settings that do not change what the run
computes (logging, checkpoint cadence, parallelism, where data and weights are found)
and may lengthen a phase (`phaseN.epochs`, `phaseN.early_stopping_patience`). Anything
else is refused with the list of differences, and the run's files stay as they were.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import re
import shutil
from typing import Iterator

import ml_collections

from artclf import scheme as scheme_lib
from artclf.run.files import CONFIG_FILE, EXTENDABLE, FREE_TO_CHANGE, config_differences
# Paths in a config, made absolute when the run starts, so that the saved config works
# from any folder (evaluate and predict read it).
PATH_KEYS = ("data.source_dir", "data.data_dir", "feature_cache.dir", "weights_dir",
             "weights_tarball")


class WorkdirError(ValueError):
  """The workdir cannot be used for this run; the message says why and what to do."""


@contextlib.contextmanager
def locked(workdir: pathlib.Path) -> Iterator[None]:
  """Holds an exclusive lock on the workdir folder itself (no lock file is written)."""
  workdir.mkdir(parents=True, exist_ok=True)
  descriptor = os.open(workdir, os.O_RDONLY)
  try:
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirError(f"{workdir} is in use by another training run; wait for it to end "
                         "or use another --workdir") from None
    yield
  finally:
    os.close(descriptor)  # closing releases the lock


def absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose non-empty PATH_KEYS are absolute."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key in PATH_KEYS:
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    if leaf in node and node[leaf]:
      node[leaf] = str(pathlib.Path(node[leaf]).expanduser().resolve())
  return config


def check_resume(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> list[str]:
  """Raises WorkdirError if `config` cannot continue the run in `workdir`.

  Returns the accepted changes, as lines to log ('phase1.epochs: 10 -> 20').
  """
  path = workdir / CONFIG_FILE
  if not path.exists():
    return []
  try:
    saved = json.loads(path.read_text())
  except (OSError, ValueError) as error:
    raise WorkdirError(f"{path} cannot be read ({error}); start a new --workdir") from None
  if isinstance(saved, dict) and "tasks" not in saved:
    saved.update(scheme_lib.DEFAULT.config_values())  # a run saved before schemes
  differences = config_differences(saved, config.to_dict())
  refused = {k: v for k, v in differences.items() if k not in FREE_TO_CHANGE + EXTENDABLE}
  if refused:
    listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
    raise WorkdirError(
        f"{workdir} holds a run with another config ({listing}). Resume it with its own "
        f"config ({path}) or start a new --workdir; nothing in it was changed")
  return [f"{k}: {a!r} -> {b!r}" for k, (a, b) in differences.items()]


def save_config(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  """Writes config.json atomically (a reader never sees half a file)."""
  path = workdir / CONFIG_FILE
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(tmp, path)


class WriteFailed(Exception):
  """A write of the run failed (a full disk, a read-only folder); the message says what was
  kept and what to do. Orbax leaves its saves in flight, which would print tracebacks at
  shutdown, so the process ends as soon as this is reported."""
  exit_at_once = True


def describe_os_error(error: OSError, workdir: str | os.PathLike | None = None) -> WriteFailed:
  """One line for a failed write: what was full or read-only, where, and what was kept."""
  where = f" ({error.filename})" if error.filename else ""
  if error.errno in (errno.ENOSPC, errno.EDQUOT):
    if workdir is None:
      return WriteFailed(f"the disk is full{where}: free some space; the last complete "
                         "checkpoint is kept")
    writing = f"writing {error.filename}" if error.filename else "saving the run"
    return WriteFailed(f"the disk holding {workdir} is full ({_disk_space(workdir)}) while "
                       f"{writing}; kept: {_kept(pathlib.Path(workdir))}; free some space and "
                       "run the same command again to resume")
  if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    return WriteFailed(f"cannot write{where}: {error.strerror}; choose a writable --workdir")
  return WriteFailed(f"{error.strerror or error}{where}")


def disk_error(error: BaseException) -> OSError | None:
  """The full or read-only disk behind `error`, if any: an OSError in its chain, or the
  text orbax and tensorstore give it ('... Failed writing: "PATH": ... No space left')."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
      return seen
    seen = seen.__cause__ or seen.__context__
  text = str(error)
  if "No space left on device" not in text:
    return None
  found = re.search(r'(?:writing local file|Failed writing:) "([^"]+)"', text)
  path = re.sub(r"\.orbax-checkpoint-tmp.*$", "", found.group(1)) if found else None
  return OSError(errno.ENOSPC, "No space left on device", path)


def _disk_space(path: str | os.PathLike) -> str:
  """'12 KB free of 400 KB on /mnt' for the file system holding `path`."""
  path = pathlib.Path(path).resolve()
  while not path.exists() and path != path.parent:
    path = path.parent
  mount = path
  while not os.path.ismount(mount) and mount != mount.parent:
    mount = mount.parent
  usage = shutil.disk_usage(path)
  return f"{_size(usage.free)} free of {_size(usage.total)} on {mount}"


def _size(count: float) -> str:
  """'0 bytes', '400.0 KB', '1.5 GB'."""
  for unit in ("bytes", "KB", "MB"):
    if count < 1024:
      return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
    count /= 1024
  return f"{count:.1f} GB"


def _kept(workdir: pathlib.Path) -> str:
  """The complete checkpoints in the workdir (a save cut off leaves only a tmp folder)."""
  def steps(folder):
    return sorted(int(p.name) for p in (workdir / folder).glob("*") if p.name.isdigit())
  last, best = steps("checkpoints"), steps("best")
  if not last and not best:
    return "no complete checkpoint yet"
  kept = [f"checkpoint of step {last[-1]} in {workdir / 'checkpoints'}"] if last else []
  return ", ".join(kept + ([f"best of step {best[-1]}"] if best else []))
