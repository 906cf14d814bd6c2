"""Teaching in the background: one `artclf.adapt` at a time, its progress, its outcome.

  job = teach_job.TeachJob()
  job.start(work)        # work(progress) -> dict, run in a thread; False if one is running
  job.snapshot()         # {'state': 'idle'|'running'|'done'|'failed', 'message', 'fraction',
                         #  'result' (work's dict) or 'error' (one line)}

`teach` is the work the page starts: the pending corrections as a labels.csv, adapted
from the served run into a new folder under TEACH_DIR/runs, whose nearest training
photos then include the taught ones.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Callable

from artclf.adapt import adapter
from artclf.run import neighbours
from artclf.serve import predict as predict_lib
from artclf.serve import runs as runs_lib
from artclf.serve import teaching

CSV_FOLDER = "taught_csv"  # the labels.csv each taught run was adapted with


class TeachJob:
  """The state of the one background adapt, read by polling."""

  def __init__(self):
    self._lock = threading.Lock()
    self._state = {"state": "idle", "message": "", "fraction": 0.0}

  def snapshot(self) -> dict:
    with self._lock:
      return dict(self._state)

  def _set(self, **values) -> None:
    with self._lock:
      self._state.update(values)

  def start(self, work: Callable[[Callable[[str, float], None]], dict]) -> bool:
    """Runs work(progress) in a thread; False when one is running already."""
    with self._lock:
      if self._state["state"] == "running":
        return False
      self._state = {"state": "running", "message": "starting", "fraction": 0.0}
    threading.Thread(target=self._run, args=(work,), daemon=True, name="teach").start()
    return True

  def _run(self, work) -> None:
    try:
      result = work(lambda message, fraction: self._set(message=message,
                                                        fraction=float(fraction)))
    except (ValueError, OSError) as error:  # adapt's one-line refusals
      self._set(state="failed", error=str(error).splitlines()[0][:500])
      return
    except Exception:  # pylint: disable=broad-except  # the server must live on
      logging.exception("teaching failed")
      self._set(state="failed", error="internal error: the server log has the details")
      return
    self._set(state="done", message="done", fraction=1.0, result=result)


def adapt_overrides(settings) -> dict:
  """configs/adapt.py's settings that the serve config changes (teach_epochs, ...)."""
  given = {"epochs": settings.teach_epochs, "learning_rate": settings.teach_learning_rate}
  return {key: value for key, value in given.items() if value}


def teach(store: teaching.CorrectionStore, registry: runs_lib.RunRegistry, base: pathlib.Path,
          tasks, settings, progress) -> dict:
  """Adapts `base` with the corrections not yet taught into it (the serve config's
  teach_* settings); returns the new run's name and its summary (rows, before/after)."""
  already = {step["run"] for step in runs_lib.lineage_of(base)}
  out = registry.new_folder()
  csv_path = store.folder / CSV_FOLDER / f"{out.name}.csv"
  keys = store.write_csv(csv_path, tasks, exclude_taught_in=already)
  if not keys:
    raise ValueError("no new correction to teach: correct a label on the page first")
  adapter.adapt(base, csv_path, out, holdout_fraction=settings.teach_holdout_fraction,
                config_overrides=adapt_overrides(settings), progress=progress)
  progress("the taught photos among the neighbours", 0.95)
  neighbours.add_photos(predict_lib.load_model(out), store.photos_of(keys),
                        related=runs_lib.lineage_bases(out))
  store.mark_taught(keys, out.name)
  return {"run": out.name, "base": base.name, "summary": runs_lib.read_summary(out)}
