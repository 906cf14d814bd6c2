"""Tests of artclf.eval.calibration: temperature scaling keeps argmax, never raises NLL."""

import math

import numpy as np
import pytest

from artclf.eval import calibration, metrics
from artclf.scheme import UNKNOWN


def sample_calibrated(seed, num_images=3000, num_classes=3, scale=2.0):
  """Logits and labels drawn from softmax(logits): calibrated by construction."""
  rng = np.random.default_rng(seed)
  logits = scale * rng.standard_normal((num_images, num_classes)).astype(np.float32)
  probs = calibration.softmax(logits)
  cumulative = probs.cumsum(axis=1)
  labels = (rng.random((num_images, 1)) > cumulative).sum(axis=1)
  return logits, np.minimum(labels, num_classes - 1)


def test_over_confident_logits_get_t_above_one_and_lower_ece():
  logits, labels = sample_calibrated(seed=0)
  over_confident = 4.0 * logits
  fit = calibration.fit_temperature(over_confident, labels)
  assert 3.0 < fit.temperature < 5.5            # about the factor 4 we applied
  assert fit.nll_after < fit.nll_before
  assert fit.ece_after < 0.5 * fit.ece_before
  assert fit.ece_before > 0.1                   # the set-up really is over-confident
  scaled = calibration.apply_temperature(over_confident, fit.temperature)
  np.testing.assert_array_equal(scaled.argmax(axis=1), over_confident.argmax(axis=1))


def test_under_confident_logits_get_t_below_one():
  logits, labels = sample_calibrated(seed=1)
  fit = calibration.fit_temperature(logits / 3.0, labels)
  assert 0.2 < fit.temperature < 0.5
  assert fit.nll_after < fit.nll_before


def test_fit_never_raises_nll_and_never_changes_argmax():
  rng = np.random.default_rng(2)
  for trial in range(20):
    n = int(rng.integers(1, 40))
    logits = rng.standard_normal((n, 3)) * rng.uniform(0.01, 20)
    labels = rng.integers(0, 3, size=n)
    labels[rng.random(n) < 0.2] = UNKNOWN
    fit = calibration.fit_temperature(logits, labels)
    assert fit.temperature > 0
    if np.all(labels == UNKNOWN):
      assert fit.temperature == 1.0
      continue
    assert fit.nll_after <= fit.nll_before, trial
    assert fit.nll_before == pytest.approx(calibration.nll_at_temperature(logits, labels, 1.0))
    scaled = calibration.apply_temperature(logits, fit.temperature)
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))


def test_falls_back_to_one_when_the_search_does_not_improve(monkeypatch):
  logits, labels = sample_calibrated(seed=3)       # optimum near T = 1
  # A search that lands far from the optimum must not be accepted.
  monkeypatch.setattr(calibration, "_golden_section_minimize", lambda f, lo, hi, tol: 2.5)
  fit = calibration.fit_temperature(logits, labels)
  assert fit.temperature == 1.0
  assert fit.nll_after == fit.nll_before


def test_fit_is_deterministic_and_matches_a_grid_search():
  logits, labels = sample_calibrated(seed=4, num_images=500)
  logits = 2.5 * logits
  first = calibration.fit_temperature(logits, labels)
  assert calibration.fit_temperature(logits, labels) == first
  grid = np.linspace(-3, 3, 6001)
  nll = [calibration.nll_at_temperature(logits, labels, math.exp(u)) for u in grid]
  best = math.exp(grid[int(np.argmin(nll))])
  assert first.temperature == pytest.approx(best, rel=2e-3)


def test_unknown_labels_do_not_affect_the_fit():
  logits, labels = sample_calibrated(seed=5, num_images=400)
  logits = 3.0 * logits
  padded_logits = np.concatenate([logits, 50.0 * np.eye(3)[np.zeros(50, int)]])
  padded_labels = np.concatenate([labels, np.full(50, UNKNOWN)])
  assert (calibration.fit_temperature(padded_logits, padded_labels).temperature
          == calibration.fit_temperature(logits, labels).temperature)


def test_fit_temperatures_fits_each_head_separately():
  logits, labels = sample_calibrated(seed=6, num_images=1500)
  fits = calibration.fit_temperatures(
      {"culture": 4.0 * logits, "medium": logits / 2.0}, {"culture": labels, "medium": labels})
  assert fits["culture"].temperature > 2.5
  assert fits["medium"].temperature < 0.8


def test_calibrated_probs_feed_the_metrics_report():
  logits, labels = sample_calibrated(seed=7, num_images=200)
  probs = calibration.softmax(calibration.apply_temperature(logits, 1.7))
  np.testing.assert_allclose(probs.sum(axis=1), 1.0)
  report = metrics.task_report(labels, probs, class_names=("egyptian", "greek", "roman"))
  assert report["nll"] == pytest.approx(calibration.nll_at_temperature(logits, labels, 1.7))


def test_invalid_temperatures_are_rejected():
  for bad in (0.0, -1.0, math.inf, math.nan):
    with pytest.raises(ValueError):
      calibration.apply_temperature(np.zeros((1, 3)), bad)
