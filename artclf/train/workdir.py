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


def describe_os_error(error: OSError) -> str:
  """One line for a failed write: a full disk or a read-only folder, with what to do."""
  where = f" ({error.filename})" if error.filename else ""
  if error.errno == errno.ENOSPC:
    return f"the disk is full{where}: free some space; the last complete checkpoint is kept"
  if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    return f"cannot write{where}: {error.strerror}; choose a writable --workdir"
  return f"{error.strerror or error}{where}"
