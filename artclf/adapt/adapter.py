"""A new run from a base run and a collection's corrections (see `adapt`)."""

from __future__ import annotations

import os
import pathlib
from typing import Callable

import ml_collections


class AdaptError(ValueError):
  """Adapting cannot start (OUT exists, BASE is not a run, ...); the message says why."""


def adapt(base_workdir: str | os.PathLike, labels_csv: str | os.PathLike,
          out_workdir: str | os.PathLike, *, holdout_fraction: float | None = None,
          config_overrides: dict | ml_collections.ConfigDict | None = None,
          progress: Callable[[str, float], None] | None = None) -> dict:
  """Writes to `out_workdir` a complete run adapted from `base_workdir` with the rows of
  `labels_csv`; returns its summary (see /work/notes/adapt_api.md)."""
  raise NotImplementedError
