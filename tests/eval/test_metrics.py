"""Tests of artclf.eval.metrics: the study's own figures, hand-computed metrics, masking."""

import json
import math

import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.eval import metrics
from artclf.scheme import UNKNOWN

TASKS, CLASSES = scheme_lib.DEFAULT.tasks, scheme_lib.DEFAULT.classes

# The study's Fig. 8 confusion matrices on its test set (rows actual, columns predicted).
STUDY_CONFUSION = {
    "culture": [[114, 6, 0], [67, 37, 0], [83, 21, 1]],
    "medium": [[11, 69, 2], [7, 118, 1], [4, 91, 26]],
    "period": [[21, 17, 31], [20, 26, 27], [15, 26, 146]],
}


def expand_matrix(matrix):
  """(labels, preds) arrays with matrix[i][j] images of class i predicted as j."""
  labels, preds = [], []
  for i, row in enumerate(matrix):
    for j, count in enumerate(row):
      labels += [i] * count
      preds += [j] * count
  return np.array(labels), np.array(preds)


def one_hot(preds, num_classes=3):
  return np.eye(num_classes)[preds]


def study_report():
  labels, probs = {}, {}
  for task in TASKS:
    labels[task], preds = expand_matrix(STUDY_CONFUSION[task])
    probs[task] = one_hot(preds)
  return metrics.evaluate_predictions(labels, probs, scheme_lib.DEFAULT)


# --- The study's figures, re-derived through the public API.


def test_study_matrices_give_the_study_accuracies():
  report = study_report()
  accuracies = {t: round(100 * report["tasks"][t]["accuracy"], 2) for t in TASKS}
  assert accuracies == {"culture": 46.20, "medium": 47.11, "period": 58.66}
  assert round(100 * report["mean_accuracy"], 2) == 50.66
  for task in TASKS:
    assert report["tasks"][task]["num_known"] == 329
    assert report["tasks"][task]["confusion_matrix"] == STUDY_CONFUSION[task]


def test_study_figures_constant_matches_the_study_matrices():
  report = study_report()
  for task in TASKS:
    assert round(100 * report["tasks"][task]["accuracy"], 2) == round(
        100 * metrics.STUDY_FIGURES[f"{task}_accuracy"], 2)
  assert round(100 * report["mean_accuracy"], 2) == round(
      100 * metrics.STUDY_FIGURES["mean_accuracy"], 2)


def test_study_all_three_figure_is_consistent_with_its_test_set():
  # Not derivable from the per-task matrices, but it must be a whole number of
  # the 329 test images and cannot exceed the worst head's correct count.
  all_three = metrics.STUDY_FIGURES["all_tasks_correct"]
  matching = [k for k in range(330) if round(100 * k / 329, 2) == round(100 * all_three, 2)]
  assert matching == [37]
  assert 37 <= min(np.trace(np.array(m)) for m in STUDY_CONFUSION.values())


def test_confusion_table_shows_the_study_matrix_with_recall():
  table = metrics.format_confusion_table("culture", STUDY_CONFUSION["culture"],
                                       scheme_lib.DEFAULT.classes["culture"])
  lines = table.splitlines()
  header = next(line for line in lines if "egyptian" in line and "greek" in line)
  assert header.index("egyptian") < header.index("greek") < header.index("roman")
  egyptian_row = next(line for line in lines if line.startswith("egyptian"))
  assert egyptian_row.split()[1:4] == ["114", "6", "0"]
  assert "95.00%" in egyptian_row                      # 114 / 120
  roman_row = next(line for line in lines if line.startswith("roman"))
  assert "0.95%" in roman_row                          # 1 / 105
  assert "46.20%" in table


def test_markdown_summary_puts_results_beside_the_study():
  summary = metrics.markdown_summary(study_report())
  rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
          for line in summary.splitlines() if line.startswith("| ") and "---" not in line}
  assert rows["culture accuracy"] == ["46.20% (152/329)", "46.20%"]
  assert rows["period accuracy"] == ["58.66% (193/329)", "58.66%"]
  assert rows["mean accuracy"] == ["50.66%", "50.66%"]
  assert rows["all three correct"][1] == "11.25%"
  assert rows["mean balanced accuracy"][1] == "—"
  no_study = metrics.markdown_summary(study_report(), study=None)
  assert "Study" not in no_study and "11.25%" not in no_study


# --- Hand-computed metrics on small examples.


def test_metrics_of_a_small_matrix_match_hand_computation():
  # support [4, 2, 3]; predicted [6, 2, 1]; tp [3, 1, 1].
  labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
  preds = np.array([0, 0, 0, 1, 0, 1, 0, 0, 2])
  matrix = metrics.confusion_matrix(labels, preds, 3)
  np.testing.assert_array_equal(matrix, [[3, 1, 0], [1, 1, 0], [2, 0, 1]])

  report = metrics.task_report(labels, preds, class_names=scheme_lib.DEFAULT.classes["medium"])
  assert report["accuracy"] == pytest.approx(5 / 9)
  assert report["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 3) / 3)
  # F1 = 2TP / (2TP + FP + FN): 6/10, 2/4, 2/4.
  assert report["macro_f1"] == pytest.approx((0.6 + 0.5 + 0.5) / 3)
  per_class = report["per_class"]
  assert per_class["architecture"] == pytest.approx(
      {"precision": 0.5, "recall": 0.75, "f1": 0.6, "support": 4})
  assert per_class["sculpture"] == pytest.approx(
      {"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "support": 3})


def test_class_without_support_is_left_out_of_balanced_accuracy():
  # Class 2 never occurs as a label but is predicted once.
  labels = np.array([0, 0, 0, 1, 1, 1])
  preds = np.array([0, 0, 1, 0, 1, 2])
  report = metrics.task_report(labels, preds, num_classes=3)
  assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 3) / 2)
  # Class 2 was predicted, so its F1 (0) counts: (4/6 + 2/5 + 0) / 3.
  assert report["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
  assert math.isnan(report["per_class"]["2"]["recall"])
  assert report["per_class"]["2"]["precision"] == 0.0


def test_never_predicted_class_has_undefined_precision_and_zero_f1():
  labels = np.array([0, 1, 2])
  preds = np.array([0, 1, 1])
  stats = metrics.per_class_stats(metrics.confusion_matrix(labels, preds, 3))
  assert math.isnan(stats["precision"][2])
  assert stats["f1"][2] == 0.0
  assert stats["recall"][2] == 0.0


def test_ece_and_nll_match_hand_computation():
  labels = np.array([0, 1, 0, 0])
  probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
  # Bin of 0.9: accuracy 0.5, gap 0.4; bin of 0.6: accuracy 1, gap 0.4; each half.
  assert metrics.expected_calibration_error(labels, probs) == pytest.approx(0.4)
  expected_nll = -(np.log(0.9) + np.log(0.1) + 2 * np.log(0.6)) / 4
  assert metrics.negative_log_likelihood(labels, probs) == pytest.approx(expected_nll)


def test_ece_bins_are_right_closed():
  # With 15 bins, 2/3 = 10/15 closes bin (9/15, 10/15] while 0.7 lies in
  # (10/15, 11/15]; left-closed bins would put both in one bin, where their
  # errors would partly cancel to |0.5 - 0.6833|.
  labels = np.array([0, 1])
  probs = np.array([[2 / 3, 1 / 3], [0.7, 0.3]])
  assert metrics.expected_calibration_error(labels, probs) == pytest.approx(
      0.5 * (1 - 2 / 3) + 0.5 * 0.7)


def test_logits_are_rejected_where_probabilities_are_expected():
  labels = {t: np.array([0, 1]) for t in TASKS}
  logits = {t: np.array([[2.0, -1.0, 0.5], [0.1, 3.0, -2.0]]) for t in TASKS}
  with pytest.raises(ValueError, match="softmax"):
    metrics.evaluate_predictions(labels, logits, scheme_lib.DEFAULT)


def test_labels_out_of_range_are_rejected():
  with pytest.raises(ValueError):
    metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
  with pytest.raises(ValueError):
    metrics.confusion_matrix(np.array([0, 1]), np.array([0.0, 1.0]), 3)


# --- UNKNOWN labels are masked.


def test_unknown_labels_are_excluded_from_accuracy_and_all_three():
  u = UNKNOWN
  # Image:               0  1  2  3  4
  labels = {
      "culture": np.array([0, 1, u, 2, 0]),
      "medium": np.array([1, u, 2, 0, 2]),
      "period": np.array([2, 0, 1, u, 1]),
  }
  preds = {
      "culture": np.array([0, 1, 0, 2, 1]),   # image 2 "wrong" but unknown
      "medium": np.array([1, 0, 2, 0, 2]),    # image 1 "wrong" but unknown
      "period": np.array([2, 0, 1, 0, 1]),    # image 3 "wrong" but unknown
  }
  report = metrics.evaluate_predictions(labels, {t: one_hot(p) for t, p in preds.items()},
                                        scheme_lib.DEFAULT)
  culture = report["tasks"]["culture"]
  # 3 of 4 known are right; counting the unknown one as wrong would give 3/5.
  assert (culture["num_correct"], culture["num_known"]) == (3, 4)
  assert culture["accuracy"] == pytest.approx(0.75)
  assert report["tasks"]["medium"]["accuracy"] == 1.0
  assert report["tasks"]["period"]["accuracy"] == 1.0
  assert sum(map(sum, culture["confusion_matrix"])) == 4
  # Only images 0 and 4 have all three labels; image 0 is all right, image 4
  # has culture wrong -> 1/2. (Over all five images it would be 1/5; over images
  # with every *known* label right it would be 3/5.)
  assert report["all_tasks"] == {"name": "all three", "num_known": 2, "num_correct": 1,
                                 "accuracy": 0.5}


def test_report_is_strict_json_with_undefined_values_as_null():
  labels = {t: np.array([UNKNOWN, UNKNOWN]) for t in TASKS}
  labels["culture"] = np.array([0, 0])
  probs = {t: one_hot(np.array([0, 1])) for t in TASKS}
  report = metrics.evaluate_predictions(labels, probs, scheme_lib.DEFAULT)
  assert math.isnan(report["tasks"]["medium"]["accuracy"])
  decoded = json.loads(metrics.report_to_json(report))
  assert decoded["tasks"]["medium"]["accuracy"] is None
  assert decoded["tasks"]["culture"]["accuracy"] == 0.5
  assert decoded["tasks"]["culture"]["per_class"]["greek"]["precision"] == 0.0
  assert decoded["tasks"]["culture"]["per_class"]["greek"]["recall"] is None
  assert decoded["all_tasks"] == {"name": "all three", "num_known": 0, "num_correct": 0,
                                  "accuracy": None}
  assert set(decoded["tasks"]) == set(TASKS)
  assert list(decoded["tasks"]["period"]["per_class"]) == list(CLASSES["period"])
