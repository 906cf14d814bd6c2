"""Source-aware evaluation: every metric per group (museum, ...), and the shortcut report.

Collections photograph differently (lighting, backgrounds, borders, image size). A model
can learn which museum took a photograph as much as what is in it, and then fails on a
collection it has not seen. Two views of that:

  * `group_reports`: the full report of `artclf.eval.metrics` for each group of images
    (say, each museum), with its counts, so that a mean over a mixed test split does not
    hide a collection the model gets wrong;
  * `shortcut_report`: within one class (say, Egyptian sculpture), how well the group can
    be told apart from the model's own features by a cross-validated linear probe. Chance
    is 1 / groups; a balanced accuracy far above it means the features carry the
    photographer, not only the art.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from artclf import scheme as scheme_lib
from artclf.eval import linear_probe, metrics

# A group needs this many images of a class to take part in that class's shortcut probe.
MIN_GROUP_IMAGES = 8
FOLDS = 5


def group_reports(label_ids: dict[str, np.ndarray], probs: dict[str, np.ndarray],
                  groups: Sequence[str], scheme: scheme_lib.LabelScheme) -> dict[str, dict]:
  """{group: the metrics report of its images, with 'num_images'}, largest group first."""
  groups = np.asarray(groups)
  names, counts = np.unique(groups, return_counts=True)
  reports = {}
  for name in names[np.argsort(-counts, kind="stable")]:
    rows = groups == name
    reports[str(name)] = metrics.evaluate_predictions(
        {t: np.asarray(v)[rows] for t, v in label_ids.items()},
        {t: np.asarray(v)[rows] for t, v in probs.items()}, scheme)
  return reports


def shortcut_report(features: np.ndarray, label_ids: dict[str, np.ndarray],
                    groups: Sequence[str], scheme: scheme_lib.LabelScheme, c: float = 1e-2,
                    seed: int = 0) -> dict[str, dict]:
  """{'<task>=<class>': {'groups': {name: count}, 'balanced_accuracy', 'chance'}}.

  For every class of every task whose images come from two or more groups of at least
  MIN_GROUP_IMAGES images, a FOLDS-fold cross-validated class-balanced logistic regression
  predicts the group from `features` (standardised on each fold's fitting rows).
  """
  groups = np.asarray(groups)
  report = {}
  for task in scheme.tasks:
    for class_id, class_name in enumerate(scheme.classes[task]):
      rows = np.flatnonzero(np.asarray(label_ids[task]) == class_id)
      names, counts = np.unique(groups[rows], return_counts=True)
      kept = names[counts >= MIN_GROUP_IMAGES]
      if len(kept) < 2:
        continue
      rows = rows[np.isin(groups[rows], kept)]
      target = np.searchsorted(kept, groups[rows])
      predicted = _cross_validated(features[rows], target, len(kept), c, seed)
      report[f"{task}={class_name}"] = {
          "groups": {str(n): int(np.sum(groups[rows] == n)) for n in kept},
          "balanced_accuracy": float(np.mean([np.mean(predicted[target == g] == g)
                                              for g in range(len(kept))])),
          "chance": 1.0 / len(kept)}
  return report


def _cross_validated(x: np.ndarray, y: np.ndarray, num_classes: int, c: float,
                     seed: int) -> np.ndarray:
  """Each row's predicted class from a probe fitted on the other folds."""
  import jax  # pylint: disable=import-outside-toplevel
  fold = np.random.default_rng(seed).permutation(len(y)) % FOLDS
  predicted = np.zeros(len(y), np.int64)
  for k in range(FOLDS):
    fit, held = fold != k, fold == k
    mean, std = x[fit].mean(0), x[fit].std(0) + 1e-6
    z = (x - mean) / std
    params = linear_probe.fit_logistic_regression(z, y, num_classes, c, iterations=200, rows=fit)
    logits = np.asarray(jax.numpy.asarray(z[held]) @ params["w"] + params["b"])
    predicted[held] = logits.argmax(-1)
  return predicted


def format_groups(reports: dict[str, dict], column: str) -> str:
  """A markdown table: per group, its images and the headline figures."""
  first = next(iter(reports.values()), None)
  tasks = list(first["tasks"]) if first else []
  every = first["all_tasks"]["name"] if first else "all"
  lines = [f"| {column} | images | " + " | ".join(f"{t} acc / bal" for t in tasks) +
           f" | mean bal | {every} |", "|---" * (len(tasks) + 4) + "|"]
  for name, r in reports.items():
    cells = []
    for task in tasks:
      t = r["tasks"][task]
      cells.append("-" if not t["num_known"] else
                   f"{_pct(t['accuracy'])} / {_pct(t['balanced_accuracy'])} ({t['num_known']})")
    lines.append(f"| {name} | {r['num_images']} | " + " | ".join(cells) +
                 f" | {_pct(r['mean_balanced_accuracy'])} | {_pct(r['all_tasks']['accuracy'])} |")
  return "\n".join(lines)


def format_shortcuts(report: dict[str, dict], column: str) -> str:
  lines = [f"| class | {column}s (images) | {column} told apart (balanced accuracy) | chance |",
           "|---|---|---|---|"]
  for name, r in report.items():
    listed = ", ".join(f"{g} {n}" for g, n in r["groups"].items())
    lines.append(f"| {name} | {listed} | {_pct(r['balanced_accuracy'])} | {_pct(r['chance'])} |")
  return "\n".join(lines)


def _pct(value) -> str:
  return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}%"
