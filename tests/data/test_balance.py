"""Class counts, class weights and sampling weights."""

import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.data import balance


SCHEME = scheme_lib.DEFAULT


def _ids(culture, medium=None, period=None):
  n = len(culture)
  return {"culture": np.array(culture), "medium": np.array(medium or [-1] * n),
          "period": np.array(period or [-1] * n)}


def test_class_counts_ignore_unknown():
  counts = balance.class_counts(_ids([0, 0, 0, 1, -1, 2, -1], [2, 2, -1, -1, -1, -1, -1]), SCHEME)
  np.testing.assert_array_equal(counts["culture"], [3, 1, 1])
  np.testing.assert_array_equal(counts["medium"], [0, 0, 2])
  np.testing.assert_array_equal(counts["period"], [0, 0, 0])


def test_inverse_frequency_weights_have_mean_one():
  weights = balance.class_weights(np.array([90, 9, 1]))
  assert weights.mean() == pytest.approx(1.0)
  assert weights[1] / weights[0] == pytest.approx(10.0)
  assert weights[2] / weights[1] == pytest.approx(9.0)
  sqrt = balance.class_weights(np.array([100, 25, 4]), power=0.5)
  assert sqrt[2] / sqrt[0] == pytest.approx(5.0)
  smoothed = balance.class_weights(np.array([90, 9, 1]), smoothing=10)
  assert smoothed[2] / smoothed[0] == pytest.approx(100 / 11)


def test_missing_class_gets_zero_and_is_left_out_of_the_mean():
  weights = balance.class_weights(np.array([30, 0, 10]))
  assert weights[1] == 0
  assert weights[[0, 2]].mean() == pytest.approx(1.0)
  assert weights[2] / weights[0] == pytest.approx(3.0)
  with pytest.raises(ValueError, match="every class count is zero"):
    balance.class_weights(np.zeros(3))


def test_cap_keeps_mean_one():
  weights = balance.class_weights(np.array([1000, 100, 1]), max_weight=2.0)
  assert weights.max() == pytest.approx(2.0)
  assert weights.mean() == pytest.approx(1.0, abs=1e-6)
  assert weights[1] / weights[0] == pytest.approx(10.0, rel=1e-5)  # Uncapped ratio kept.
  with pytest.raises(ValueError, match="max_weight must be >= 1"):
    balance.class_weights(np.array([1, 2, 3]), max_weight=0.5)


def test_culture_sampling_gives_each_culture_equal_mass():
  ids = _ids([0] * 8 + [1] * 3 + [2] + [-1] * 2)
  probabilities = balance.sampling_weights(ids, SCHEME, "culture")
  assert probabilities.sum() == pytest.approx(1.0)
  masses = [probabilities[ids["culture"] == c].sum() for c in range(3)]
  assert masses[0] == pytest.approx(masses[1]) == pytest.approx(masses[2])
  # Unknown culture: the mean class weight, 1, like a 'typical' example.
  counts_weights = balance.class_weights(np.array([8, 3, 1]))
  assert probabilities[-1] / probabilities[0] == pytest.approx(1 / counts_weights[0])


def test_product_and_uniform_sampling():
  ids = _ids([0, 0, 0, 1], [2, 2, 1, -1], [1, 1, 1, 0])
  uniform = balance.sampling_weights(ids, SCHEME, "uniform")
  np.testing.assert_allclose(uniform, 0.25)
  product = balance.sampling_weights(ids, SCHEME, "product")
  culture_w = balance.class_weights(np.array([3, 1, 0]))
  medium_w = balance.class_weights(np.array([0, 1, 2]))
  period_w = balance.class_weights(np.array([1, 3, 0]))
  raw = np.array([culture_w[0] * medium_w[2] * period_w[1],
                  culture_w[0] * medium_w[2] * period_w[1],
                  culture_w[0] * medium_w[1] * period_w[1], culture_w[1] * 1.0 * period_w[0]])
  np.testing.assert_allclose(product, raw / raw.sum(), rtol=1e-6)
  with pytest.raises(ValueError, match="sampling mode"):
    balance.sampling_weights(ids, SCHEME, "inverse")


def test_missing_classes_are_named():
  ids = _ids([0, 0, 2], [2, -1, -1], [0, 1, 2])
  assert balance.missing_classes(ids, SCHEME) == [
      "culture=greek", "medium=architecture", "medium=painting"]


def test_sampling_balances_any_task_of_a_scheme():
  four = scheme_lib.LabelScheme(SCHEME.tasks + ("museum",), SCHEME.class_names + (("a", "b"),))
  ids = {**_ids([0, 0, 0, 1]), "museum": np.array([0, 0, 0, 1])}
  probabilities = balance.sampling_weights(ids, four, "museum")
  assert probabilities[3] == pytest.approx(0.5)
  with pytest.raises(ValueError, match="museum"):
    balance.sampling_weights(_ids([0, 1]), SCHEME, "museum")


def test_a_task_without_any_label_is_named_with_its_split():
  ids = _ids([0, 1, 2, 1])  # medium and period unknown on every row
  with pytest.raises(ValueError, match="the train split has no medium or period label at all"):
    balance.check_every_task_labelled(ids, SCHEME, "train")
  with pytest.raises(ValueError, match="the train split has no medium or period label at all"):
    balance.sampling_weights(ids, SCHEME, "product")
  assert balance.sampling_weights(ids, SCHEME, "culture").sum() == pytest.approx(1.0)
