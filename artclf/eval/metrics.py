"""Evaluation metrics for a run's heads, independent of any model.

Everything here works on plain arrays: integer labels (UNKNOWN = -1 is masked
out), and either predicted class ids or per-class probabilities. The report that
`evaluate_predictions` builds contains only Python scalars, lists and dicts, so
it can be logged, compared and written with `report_to_json`.

Conventions (the same as scikit-learn's defaults where they overlap):
  * confusion matrices have rows = actual class, columns = predicted class;
  * balanced accuracy is the mean recall over the classes that have support;
  * macro-F1 is the mean F1 over the classes that occur as a label or as a
    prediction (F1 is undefined for a class that does neither);
  * an undefined value (precision of a never-predicted class, recall of a class
    without support, any metric on zero known labels) is NaN in the report,
    null in JSON and "n/a" in the tables.
"""

import json
import math
from typing import Any, Mapping

import numpy as np

from artclf import scheme as scheme_lib
from artclf.scheme import UNKNOWN

# Equal-width confidence bins for the expected calibration error.
ECE_NUM_BINS = 15

# Probabilities are clipped here before the log in the NLL, so that one
# confidently wrong image gives a large but finite loss.
_NLL_MIN_PROB = 1e-12

# Rows of a probability matrix must sum to 1 within this; catches logits passed
# where probabilities are expected.
_PROB_SUM_ATOL = 1e-3

# The figures the study reports for its test set (fractions, as printed to two
# decimals of a percent). The per-task accuracies and their mean follow from the
# study's Fig. 8 confusion matrices (tests/test_metrics.py re-derives them);
# all-three-correct is reported on its own and cannot be derived from the
# per-task matrices.
STUDY_FIGURES = {
    "culture_accuracy": 0.4620,
    "medium_accuracy": 0.4711,
    "period_accuracy": 0.5866,
    "mean_accuracy": 0.5066,
    "all_tasks_correct": 0.1125,
}
# The tasks the study's mean and all-correct figures are over: they are shown beside a
# report only when it has exactly these tasks.
STUDY_TASKS = frozenset(key[:-len("_accuracy")] for key in STUDY_FIGURES
                        if key.endswith("_accuracy") and key != "mean_accuracy")


# ---------------------------------------------------------------------------
# Confusion matrices and the metrics derived from them.


def _as_int_vector(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
  if x.size and not np.issubdtype(x.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class ids, got dtype {x.dtype}")
  return x.astype(np.int64)


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
  """[num_classes, num_classes] int64 counts; rows actual, columns predicted.

  Images whose label is UNKNOWN are left out (their prediction is not checked).
  """
  labels = _as_int_vector(labels, "labels")
  preds = _as_int_vector(preds, "preds")
  if labels.shape != preds.shape:
    raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in length")
  known = labels != UNKNOWN
  labels, preds = labels[known], preds[known]
  for name, x in (("labels", labels), ("preds", preds)):
    if x.size and (x.min() < 0 or x.max() >= num_classes):
      raise ValueError(
          f"{name} must be in [0, {num_classes}) (or UNKNOWN for labels), "
          f"got values in [{x.min()}, {x.max()}]")
  flat = labels * num_classes + preds
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(
      num_classes, num_classes)


def _as_square_matrix(matrix) -> np.ndarray:
  matrix = np.asarray(matrix)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
    raise ValueError(f"a confusion matrix must be square, got shape {matrix.shape}")
  return matrix.astype(np.int64)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  """num / den elementwise, NaN where den == 0 (without a warning)."""
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  out = np.full(np.broadcast(num, den).shape, np.nan)
  np.divide(num, den, out=out, where=den != 0)
  return out


def accuracy_from_matrix(matrix) -> float:
  matrix = _as_square_matrix(matrix)
  return float(_safe_divide(np.trace(matrix), matrix.sum()))


def per_class_stats(matrix) -> dict[str, np.ndarray]:
  """Per-class precision, recall, F1 (float, NaN where undefined) and support (int)."""
  matrix = _as_square_matrix(matrix)
  tp = np.diag(matrix)
  support = matrix.sum(axis=1)    # actual
  predicted = matrix.sum(axis=0)
  # 2TP / (2TP + FP + FN) equals 2PR / (P + R) and is defined (possibly 0)
  # whenever the class occurs as a label or a prediction.
  return {
      "precision": _safe_divide(tp, predicted),
      "recall": _safe_divide(tp, support),
      "f1": _safe_divide(2 * tp, support + predicted),
      "support": support,
  }


def _nanmean_or_nan(x: np.ndarray) -> float:
  x = x[~np.isnan(x)]
  return float(x.mean()) if x.size else math.nan


def balanced_accuracy_from_matrix(matrix) -> float:
  """Mean recall over the classes that have support."""
  return _nanmean_or_nan(per_class_stats(matrix)["recall"])


def macro_f1_from_matrix(matrix) -> float:
  """Mean F1 over the classes that occur as a label or as a prediction."""
  return _nanmean_or_nan(per_class_stats(matrix)["f1"])


# ---------------------------------------------------------------------------
# Probability-based metrics.


def _as_probs(probs, num_rows: int) -> np.ndarray:
  probs = np.asarray(probs, dtype=np.float64)
  if probs.ndim != 2 or probs.shape[0] != num_rows:
    raise ValueError(f"probs must be [N={num_rows}, C], got shape {probs.shape}")
  if probs.size:
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
      raise ValueError("probs must be finite and in [0, 1]; pass softmax(logits), not logits")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=_PROB_SUM_ATOL):
      raise ValueError("each row of probs must sum to 1; pass softmax(logits), not logits")
  return probs


def expected_calibration_error(labels, probs, num_bins: int = ECE_NUM_BINS) -> float:
  """ECE of the top-1 confidence over equal-width bins (lo, hi] on known labels.

  sum over bins of (images in bin / known images) * |accuracy - mean confidence|.
  """
  labels = _as_int_vector(labels, "labels")
  probs = _as_probs(probs, labels.shape[0])
  known = labels != UNKNOWN
  labels, probs = labels[known], probs[known]
  if not labels.size:
    return math.nan
  confidence = probs.max(axis=1)
  correct = (probs.argmax(axis=1) == labels).astype(np.float64)
  # Bin b holds confidences in (b / num_bins, (b + 1) / num_bins]; 0 joins bin 0.
  bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
  conf_sum = np.bincount(bins, weights=confidence, minlength=num_bins)
  correct_sum = np.bincount(bins, weights=correct, minlength=num_bins)
  return float(np.abs(correct_sum - conf_sum).sum() / labels.size)


def negative_log_likelihood(labels, probs) -> float:
  """Mean -log p(label) over known labels (natural log)."""
  labels = _as_int_vector(labels, "labels")
  probs = _as_probs(probs, labels.shape[0])
  known = labels != UNKNOWN
  if not known.any():
    return math.nan
  p_true = probs[known, labels[known]]
  return float(-np.log(np.maximum(p_true, _NLL_MIN_PROB)).mean())


# ---------------------------------------------------------------------------
# Reports.


def _nan_to_none(x: float) -> float | None:
  return None if math.isnan(x) else x


def task_report(labels, probs_or_preds, *, class_names=None,
                num_classes: int | None = None) -> dict[str, Any]:
  """All metrics of one head.

  Args:
    labels: [N] int class ids, UNKNOWN for images without this label.
    probs_or_preds: [N, C] probabilities (then ECE and NLL are added) or [N]
      predicted class ids.
    class_names: names the classes in "per_class" (class ids as strings otherwise).
    num_classes: needed only for predicted ids without class names.

  Returns:
    {"num_known", "num_correct", "accuracy", "balanced_accuracy", "macro_f1",
     "per_class": {class name: {"precision", "recall", "f1", "support"}},
     "confusion_matrix": [[int]] (rows actual, columns predicted),
     and, given probabilities, "ece" and "nll"}.
  """
  labels = _as_int_vector(labels, "labels")
  given = np.asarray(probs_or_preds)
  if class_names is not None:
    if num_classes is not None and num_classes != len(class_names):
      raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    num_classes = len(class_names)
  elif given.ndim == 2:
    num_classes = num_classes or given.shape[1]
  if num_classes is None:
    raise ValueError("num_classes (or class_names) is needed with predicted class ids")
  if given.ndim == 2:
    if given.shape[1] != num_classes:
      raise ValueError(f"probs have {given.shape[1]} columns, expected {num_classes}")
    probs = _as_probs(given, labels.shape[0])
    preds = probs.argmax(axis=1)
  else:
    probs, preds = None, given

  matrix = confusion_matrix(labels, preds, num_classes)
  stats = per_class_stats(matrix)
  names = class_names if class_names is not None else [str(i) for i in range(num_classes)]
  report = {
      "num_known": int(matrix.sum()),
      "num_correct": int(np.trace(matrix)),
      "accuracy": accuracy_from_matrix(matrix),
      "balanced_accuracy": balanced_accuracy_from_matrix(matrix),
      "macro_f1": macro_f1_from_matrix(matrix),
      "per_class": {
          name: {
              "precision": float(stats["precision"][i]),
              "recall": float(stats["recall"][i]),
              "f1": float(stats["f1"][i]),
              "support": int(stats["support"][i]),
          } for i, name in enumerate(names)
      },
      "confusion_matrix": matrix.tolist(),
  }
  if probs is not None:
    report["ece"] = expected_calibration_error(labels, probs)
    report["nll"] = negative_log_likelihood(labels, probs)
  return report


def evaluate_predictions(labels: Mapping[str, Any], probs: Mapping[str, Any],
                         scheme: scheme_lib.LabelScheme) -> dict[str, Any]:
  """The full evaluation report of a scheme's heads on one split.

  Args:
    labels: task -> [N] int class ids (UNKNOWN where the label is missing).
    probs: task -> [N, C] probabilities (softmax of the head's logits).
    scheme: the tasks and their class names.

  Returns:
    {"num_images": N,
     "tasks": {task: task_report(...) for each task of the scheme},
     "mean_accuracy": mean of the per-task accuracies,
     "mean_balanced_accuracy": mean of the balanced accuracies,
     "all_tasks": {"name": how to print it ('all three'),
                   "num_known": images with every label known,
                   "num_correct": those with every head right,
                   "accuracy": num_correct / num_known}}
  """
  tasks_in_order = scheme.tasks
  missing = [t for t in tasks_in_order if t not in labels or t not in probs]
  if missing:
    raise ValueError(f"labels and probs need every task; missing {missing}")
  sizes = {t: (np.shape(labels[t])[0], np.shape(probs[t])[0]) for t in tasks_in_order}
  num_images = sizes[tasks_in_order[0]][0]
  if any(n != num_images for pair in sizes.values() for n in pair):
    raise ValueError(f"all tasks need the same number of images; got {sizes}")

  tasks = {t: task_report(labels[t], probs[t], class_names=scheme.classes[t])
           for t in tasks_in_order}

  all_known = np.ones(num_images, dtype=bool)
  all_correct = np.ones(num_images, dtype=bool)
  for t in tasks_in_order:
    task_labels = _as_int_vector(labels[t], "labels")
    all_known &= task_labels != UNKNOWN
    all_correct &= np.asarray(probs[t]).argmax(axis=1) == task_labels
  num_known = int(all_known.sum())
  num_correct = int((all_known & all_correct).sum())

  return {
      "num_images": int(num_images),
      "tasks": tasks,
      "mean_accuracy": float(np.mean([tasks[t]["accuracy"] for t in tasks_in_order])),
      "mean_balanced_accuracy": float(np.mean([tasks[t]["balanced_accuracy"]
                                               for t in tasks_in_order])),
      "all_tasks": {
          "name": scheme.all_correct_name,
          "num_known": num_known,
          "num_correct": num_correct,
          "accuracy": float(_safe_divide(num_correct, num_known)),
      },
  }


def _jsonable(x):
  """Plain JSON values: NaN/inf -> None, numpy scalars and arrays -> Python."""
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, (bool, np.bool_)):
    return bool(x)
  if isinstance(x, (int, np.integer)):
    return int(x)
  if isinstance(x, (float, np.floating)):
    return float(x) if math.isfinite(x) else None
  return x


def report_to_json(report: Mapping[str, Any], indent: int | None = 2) -> str:
  """Strict JSON text of a report (undefined values become null)."""
  return json.dumps(_jsonable(report), indent=indent, allow_nan=False)


# ---------------------------------------------------------------------------
# Human-readable output.


def _pct(x: float | None, decimals: int = 2) -> str:
  return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{decimals}f}%"


def _num(x: float | None, decimals: int = 4) -> str:
  return "n/a" if x is None or math.isnan(x) else f"{x:.{decimals}f}"


def format_confusion_table(task: str, matrix, names) -> str:
  """Plain-text confusion table (rows actual, columns predicted) with row recall."""
  matrix = _as_square_matrix(matrix)
  if matrix.shape[0] != len(names):
    raise ValueError(f"{task} has {len(names)} classes, matrix is {matrix.shape}")
  recall = per_class_stats(matrix)["recall"]
  corner = "actual \\ predicted"
  first = max(len(corner), *(len(n) for n in names))
  width = max(8, *(len(n) for n in names), len(str(matrix.max(initial=0))))
  header = (f"{corner:<{first}}  " + "  ".join(f"{n:>{width}}" for n in names)
            + f"  | {'support':>7}  {'recall':>7}")
  lines = [f"{task}: rows actual, columns predicted", header, "-" * len(header)]
  for i, name in enumerate(names):
    cells = "  ".join(f"{c:>{width}}" for c in matrix[i])
    lines.append(f"{name:<{first}}  {cells}  | {matrix[i].sum():>7}  {_pct(recall[i]):>7}")
  lines.append("-" * len(header))
  lines.append(f"accuracy {_pct(accuracy_from_matrix(matrix))} "
               f"({np.trace(matrix)}/{matrix.sum()}), "
               f"balanced accuracy {_pct(balanced_accuracy_from_matrix(matrix))}")
  return "\n".join(lines)


def markdown_summary(report: Mapping[str, Any],
                     study: Mapping[str, float] | None = STUDY_FIGURES) -> str:
  """A Markdown table of `report` beside the study's figures (None: no study column)."""
  tasks = report["tasks"]
  same_tasks = set(tasks) == STUDY_TASKS

  def figure(key: str) -> float | None:
    return None if study is None else study.get(key)

  rows = []   # (metric, ours, study figure or None)
  for t in tasks:
    r = tasks[t]
    rows.append((f"{t} accuracy", f"{_pct(r['accuracy'])} ({r['num_correct']}/{r['num_known']})",
                 figure(f"{t}_accuracy")))
  rows.append(("mean accuracy", _pct(report["mean_accuracy"]),
               figure("mean_accuracy") if same_tasks else None))
  every = report["all_tasks"]
  rows.append((f"{every['name']} correct",
               f"{_pct(every['accuracy'])} ({every['num_correct']}/{every['num_known']})",
               figure("all_tasks_correct") if same_tasks else None))
  for t in tasks:
    rows.append((f"{t} balanced accuracy", _pct(tasks[t]["balanced_accuracy"]), None))
  rows.append(("mean balanced accuracy", _pct(report["mean_balanced_accuracy"]), None))
  for t in tasks:
    rows.append((f"{t} macro-F1", _num(tasks[t]["macro_f1"]), None))
  for t in tasks:
    if "ece" in tasks[t]:
      rows.append((f"{t} ECE ({ECE_NUM_BINS} bins)", _num(tasks[t]["ece"]), None))
      rows.append((f"{t} NLL", _num(tasks[t]["nll"]), None))

  if study is None:
    lines = ["| Metric | This model |", "|---|---:|"]
    lines += [f"| {m} | {ours} |" for m, ours, _ in rows]
  else:
    lines = ["| Metric | This model | Study |", "|---|---:|---:|"]
    lines += [f"| {m} | {ours} | {_pct(s) if s is not None else '—'} |" for m, ours, s in rows]
  return "\n".join(lines) + "\n"
