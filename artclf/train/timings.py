"""Where a training run's wall time goes, by part, for the last log line and train_summary.json.

  timings = Timings()
  with timings.part("caching"):
    ...                       # a part inside another counts once: the outer one loses it

The parts a run reports: dataset (build and open), weights (the model, and what is left of
reading the ImageNet weights, which a thread begins during the dataset part),
caching (the frozen stages' outputs), heads (the training steps and validation),
calibration+familiarity (the fits at the end).
"""

from __future__ import annotations

import contextlib
import time


class Timings:
  """Seconds per named part; time spent in a nested part is counted in that part only."""

  def __init__(self):
    self.seconds: dict[str, float] = {}
    self._inner: list[float] = []  # per open part: seconds spent in its nested parts
    self._start = time.perf_counter()

  @contextlib.contextmanager
  def part(self, name: str):
    start = time.perf_counter()
    self._inner.append(0.0)
    try:
      yield
    finally:
      elapsed = time.perf_counter() - start
      self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - self._inner.pop()
      if self._inner:
        self._inner[-1] += elapsed

  def summary(self) -> dict[str, float]:
    """{part: seconds} and 'total' (the wall time since the Timings began), rounded."""
    figures = {name: round(value, 1) for name, value in self.seconds.items()}
    figures["total"] = round(time.perf_counter() - self._start, 1)
    return figures

  def line(self) -> str:
    """'total 151.2 s: dataset 10.0 s, weights 30.1 s, ...' for the log."""
    figures = self.summary()
    total = figures.pop("total")
    return f"total {total:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
