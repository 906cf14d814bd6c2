"""The run-spread bench's ensemble and spread (bench/run_spread.py)."""

import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.eval import metrics
from bench.run_spread import average_probabilities, headline, spread


def _one_hot_ish(predicted, confidence):
  probs = np.full((len(predicted), 3), (1 - confidence) / 2)
  probs[np.arange(len(predicted)), predicted] = confidence
  return probs


def test_ensemble_of_runs_with_complementary_errors_beats_each_run():
  truth = np.array([0, 1, 2, 0, 1, 2])
  wrong = (truth + 1) % 3
  # Run A is sure where it is right (first half) and unsure where it is wrong; run B the reverse.
  first = np.arange(6) < 3
  run_a = np.where(first[:, None], _one_hot_ish(truth, 0.9), _one_hot_ish(wrong, 0.4))
  run_b = np.where(first[:, None], _one_hot_ish(wrong, 0.4), _one_hot_ish(truth, 0.9))
  label_ids = {task: truth for task in scheme_lib.DEFAULT.tasks}
  members = [{task: run_a for task in scheme_lib.DEFAULT.tasks}, {task: run_b for task in scheme_lib.DEFAULT.tasks}]
  each = [headline(metrics.evaluate_predictions(label_ids, m, scheme_lib.DEFAULT)) for m in members]
  both = headline(metrics.evaluate_predictions(label_ids, average_probabilities(members),
                                               scheme_lib.DEFAULT))
  assert [f["mean_accuracy"] for f in each] == [0.5, 0.5]
  assert both["mean_accuracy"] == 1.0 and both["all_tasks"] == 1.0
  # One member is its own ensemble.
  np.testing.assert_array_equal(average_probabilities(members[:1])["period"], run_a)
  with pytest.raises(ValueError):
    average_probabilities([])


def test_spread_gives_mean_sample_sd_and_range():
  s = spread([0.6, 0.7, 0.8])
  assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.1)
  assert (s["min"], s["max"]) == (0.6, 0.8)
  assert spread([0.5])["sd"] == 0.0
