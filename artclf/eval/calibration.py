"""Per-head temperature scaling (Guo et al., 2017), fitted on validation logits.

Each head gets one temperature T > 0; calibrated probabilities are
softmax(logits / T). T is found by minimising the validation NLL over log T in a
bounded interval with golden-section search: a deterministic 1-D method that
needs no gradients or learning rate. The NLL is convex in 1 / T, hence unimodal
in log T, which is what golden-section search requires.

Guarantees:
  * the fitted T never gives a higher validation NLL than T = 1 (if the search
    does not improve on T = 1, T = 1 is returned);
  * T > 0, so the argmax of every row, and with it every accuracy, is unchanged.
"""

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from artclf.eval import metrics
from artclf.scheme import UNKNOWN

# Search interval for log T: T in [e^-3, e^3] ~ [0.05, 20].
LOG_T_BOUNDS = (-3.0, 3.0)
# Golden-section stops when the bracket on log T is narrower than this.
LOG_T_TOLERANCE = 1e-6

_INV_PHI = (math.sqrt(5) - 1) / 2


def apply_temperature(logits, temperature: float) -> np.ndarray:
  """logits / T in float64 (so that no two distinct float32 logits become a tie)."""
  if not temperature > 0 or not math.isfinite(temperature):
    raise ValueError(f"temperature must be a positive finite number, got {temperature}")
  return np.asarray(logits, dtype=np.float64) / temperature


def softmax(logits) -> np.ndarray:
  """Row-wise softmax in float64."""
  z = np.asarray(logits, dtype=np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def _known(logits, labels) -> tuple[np.ndarray, np.ndarray]:
  logits = np.asarray(logits, dtype=np.float64)
  labels = np.asarray(labels)
  if logits.ndim != 2 or labels.shape != (logits.shape[0],):
    raise ValueError(f"need logits [N, C] and labels [N], got {logits.shape} and {labels.shape}")
  if not np.all(np.isfinite(logits)):
    raise ValueError("logits must be finite")
  known = labels != UNKNOWN
  known_labels = labels[known].astype(np.int64)
  if known_labels.size and (known_labels.min() < 0 or known_labels.max() >= logits.shape[1]):
    raise ValueError(f"labels must be UNKNOWN or in [0, {logits.shape[1]})")
  return logits[known], known_labels


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
  """Mean -log softmax(logits / T)[label] on already-masked arrays (exact, no clipping)."""
  z = logits / temperature
  z_max = z.max(axis=1)
  log_norm = z_max + np.log(np.exp(z - z_max[:, None]).sum(axis=1))
  return float((log_norm - z[np.arange(len(labels)), labels]).mean())


def nll_at_temperature(logits, labels, temperature: float = 1.0) -> float:
  """Validation NLL of softmax(logits / T) on the known labels (NaN if none)."""
  logits, labels = _known(logits, labels)
  if not labels.size:
    return math.nan
  return _nll(logits, labels, temperature)


def _golden_section_minimize(f, lo: float, hi: float, tol: float) -> float:
  """argmin of a unimodal f on [lo, hi], to within tol."""
  a, b = lo, hi
  c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
  fc, fd = f(c), f(d)
  while b - a > tol:
    if fc <= fd:
      b, d, fd = d, c, fc
      c = b - _INV_PHI * (b - a)
      fc = f(c)
    else:
      a, c, fc = c, d, fd
      d = a + _INV_PHI * (b - a)
      fd = f(d)
  # The interval ends are candidates too: the minimum may sit on a bound.
  candidates = [a, (a + b) / 2, b]
  return min(candidates, key=f)


@dataclasses.dataclass(frozen=True)
class TemperatureFit:
  """A fitted temperature and what it does on the data it was fitted on."""
  temperature: float
  nll_before: float   # T = 1
  nll_after: float
  ece_before: float
  ece_after: float


def calibration_errors(logits, labels, temperature: float) -> dict[str, float]:
  """NLL and ECE of softmax(logits) and of softmax(logits / T), on known labels."""
  before = softmax(logits)
  after = softmax(apply_temperature(logits, temperature))
  return {
      "nll_before": nll_at_temperature(logits, labels, 1.0),
      "nll_after": nll_at_temperature(logits, labels, temperature),
      "ece_before": metrics.expected_calibration_error(labels, before),
      "ece_after": metrics.expected_calibration_error(labels, after),
  }


def fit_temperature(logits, labels, log_t_bounds: tuple[float, float] = LOG_T_BOUNDS,
                    tol: float = LOG_T_TOLERANCE) -> TemperatureFit:
  """Fits one head's temperature on validation logits [N, C] and labels [N].

  Returns T = 1 when there are no known labels or when the search does not
  lower the NLL below its value at T = 1.
  """
  known_logits, known_labels = _known(logits, labels)
  temperature = 1.0
  if known_labels.size:
    log_t = _golden_section_minimize(
        lambda u: _nll(known_logits, known_labels, math.exp(u)), *log_t_bounds, tol)
    candidate = math.exp(log_t)
    if _nll(known_logits, known_labels, candidate) < _nll(known_logits, known_labels, 1.0):
      temperature = candidate
  return TemperatureFit(temperature=temperature, **calibration_errors(logits, labels, temperature))


def fit_temperatures(logits: Mapping[str, Any], labels: Mapping[str, Any],
                     **kwargs) -> dict[str, TemperatureFit]:
  """fit_temperature for every head: task -> TemperatureFit."""
  return {task: fit_temperature(logits[task], labels[task], **kwargs) for task in logits}


def fit_record(logits: Mapping[str, Any], labels: Mapping[str, Any], tasks, fitted_on: str,
               flip_tta: bool = False) -> dict:
  """What a run's calibration.json holds: a temperature per task fitted on `fitted_on`'s
  logits and labels, with that split's calibration errors before and after (None where
  a task has no known label there)."""
  fits = fit_temperatures({t: logits[t] for t in tasks}, {t: labels[t] for t in tasks})
  finite = lambda x: None if x is None or not math.isfinite(x) else float(x)
  return {"temperatures": {t: float(fits[t].temperature) for t in tasks},
          "fitted_on": fitted_on, "flip_tta": bool(flip_tta),
          "errors": {t: {"ece_before": finite(fits[t].ece_before),
                         "ece_after": finite(fits[t].ece_after),
                         "nll_before": finite(fits[t].nll_before),
                         "nll_after": finite(fits[t].nll_after)} for t in tasks}}
