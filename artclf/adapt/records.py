"""What an adapted run keeps of where it came from, and of the photographs it was taught.

  OUT/lineage.json       the base run (and its own lineage), the CSV and its sha256, the
                         CSV lines used for training and held out, the settings, when
  OUT/adapt_inputs.json  the inputs an adapt started with: an interrupted adapt of the same
                         inputs resumes in OUT, anything else is refused
  OUT/adapt_summary.json the before/after figures; written last, so its presence means done
  OUT/adapt_rows.npz     the taught photographs' frozen-stage features, labels and digests,
                         so that a further adapt from OUT keeps them
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from artclf import scheme as scheme_lib
from artclf.run import files

LINEAGE_FILE = "lineage.json"
INPUTS_FILE = "adapt_inputs.json"
SUMMARY_FILE = "adapt_summary.json"
ROWS_FILE = "adapt_rows.npz"


def read_json(path: pathlib.Path) -> dict | None:
  try:
    value = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def read_lineage(workdir: str | os.PathLike) -> dict | None:
  """WORKDIR/lineage.json (None for a run that was trained, not adapted)."""
  return read_json(pathlib.Path(workdir) / LINEAGE_FILE)


def write_json(path: pathlib.Path, value: dict) -> None:
  files.write_json(path, value)


def save_rows(workdir: pathlib.Path, context: str, features: dict[str, np.ndarray],
              labels: dict[str, np.ndarray], digests: list[str]) -> None:
  """The taught photographs' features (under `context`, the frozen part's digest)."""
  tmp = workdir / (ROWS_FILE + ".tmp")
  with open(tmp, "wb") as f:
    np.savez(f, context=np.asarray(context), digests=np.asarray(digests, dtype=str),
             **{f"features/{name}": value for name, value in features.items()},
             **{f"labels/{task}": value for task, value in labels.items()})
  os.replace(tmp, workdir / ROWS_FILE)


def load_rows(workdir: pathlib.Path, context: str, scheme: scheme_lib.LabelScheme
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]] | None:
  """(features, labels, digests) a base run was taught, or None (none, or another frozen
  part or scheme: they could not be reused)."""
  path = workdir / ROWS_FILE
  if not path.exists():
    return None
  with np.load(path) as saved:
    if str(saved["context"]) != context or any(f"labels/{t}" not in saved for t in scheme.tasks):
      return None
    features = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("features/")}
    labels = {t: saved[f"labels/{t}"].astype(np.int32) for t in scheme.tasks}
    return features, labels, [str(d) for d in saved["digests"]]
