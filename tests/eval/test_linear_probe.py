"""The linear-probe fit (artclf.eval.linear_probe): class balance, masked rows, convergence."""

import numpy as np

from artclf.eval.linear_probe import fit_logistic_regression


def _toy(n=60, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n)
  x = rng.normal(size=(n, 5)).astype(np.float32)
  x[np.arange(n), y] += 3.0  # class k shifts feature k
  return x, y


def test_fit_separates_classes_and_ignores_unknown_labels():
  x, y = _toy()
  params = fit_logistic_regression(x, y, 3, c=1.0, iterations=100)
  assert np.mean(np.argmax(x @ params["w"] + params["b"], -1) == y) > 0.9
  # Unknown labels (-1) carry no weight: adding such rows, whatever their features, changes nothing.
  extra = np.random.default_rng(1).normal(size=(10, 5)).astype(np.float32) * 10
  with_unknown = fit_logistic_regression(np.concatenate([x, extra]),
                                         np.concatenate([y, np.full(10, -1)]), 3, c=1.0,
                                         iterations=100)
  np.testing.assert_allclose(with_unknown["w"], params["w"], rtol=1e-4, atol=1e-5)


def test_rows_fit_equals_a_fit_on_those_rows_alone():
  x, y = _toy()
  rows = np.arange(len(y)) % 3 != 0
  masked = fit_logistic_regression(x, y, 3, c=0.1, iterations=100, rows=rows)
  subset = fit_logistic_regression(x[rows], y[rows], 3, c=0.1, iterations=100)
  np.testing.assert_allclose(masked["w"], subset["w"], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(masked["b"], subset["b"], rtol=1e-4, atol=1e-5)
  # ... and differs from a fit on every row.
  every = fit_logistic_regression(x, y, 3, c=0.1, iterations=100)
  assert not np.allclose(masked["w"], every["w"], atol=1e-3)
