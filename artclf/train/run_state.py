"""Where a run stands: saved in every checkpoint, restored in one place on resume.

A run is a sequence of phases; `global_offset` counts the steps of the phases before the
current one, so global step = global_offset + phase_step, and epochs count over the
whole run (phase 2 continues phase 1's curves). `epoch_sums` holds the sums of the
current epoch's training metrics so far, so that a run resumed mid-epoch reports that
epoch's means over all its steps, as an uninterrupted run does.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class RunState:
  phase_index: int = 0
  phase_step: int = 0           # steps done in the current phase
  global_offset: int = 0        # steps of the phases before it
  best_metric: float = -math.inf
  best_step: int | None = None
  epochs_since_best: int = 0
  stopped_early: bool = False   # the current phase ended by early stopping
  epoch_sums: dict[str, float] = dataclasses.field(default_factory=dict)
  # The selection metric of every epoch of the current phase (for smoothed selection).
  val_history: list[float] = dataclasses.field(default_factory=list)

  @property
  def global_step(self) -> int:
    return self.global_offset + self.phase_step

  def to_json(self) -> dict:
    record = dataclasses.asdict(self)
    # JSON has no infinity: a run without a best yet says so with None.
    record["best_metric"] = None if math.isinf(self.best_metric) else self.best_metric
    return record

  @classmethod
  def from_json(cls, record: dict) -> "RunState":
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in record.items() if k in fields}
    if values.get("best_metric") is None:
      values["best_metric"] = -math.inf
    return cls(**values)

  def start_phase(self, phase_index: int) -> None:
    """Moves on to a new phase: the steps done so far join the offset."""
    self.global_offset += self.phase_step
    self.phase_index, self.phase_step = phase_index, 0
    self.epochs_since_best, self.stopped_early = 0, False
    self.epoch_sums, self.val_history = {}, []
