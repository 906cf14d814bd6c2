"""Leave-one-source-out validation: train without one source, score the model on it.

A model that learned which museum took a photograph looks fine on a test split drawn from
the same museums. Holding a whole source out of training and scoring the model on it
measures what a new collection would see. Only sources that share a culture with another
source are held out: a culture with a single source would leave training without it.

`run(config, root, column)` trains one run per held-out value of `column` in ROOT/holdout_<value>
(each resumes if started again), scores each on every record of that value in all splits,
and writes ROOT/crossval.json and ROOT/crossval.md.
"""

from __future__ import annotations

import collections
import copy
import json
import pathlib

import numpy as np
from absl import logging

from artclf import labels
from artclf.data import balance, dataset, tfds_builder
from artclf.eval import calibration, evaluation, metrics
from artclf.serve import trained_model
from artclf.train import trainer


def all_splits(data_dir) -> str:
  """The split expression of every record, such as 'train+val+test'."""
  return "+".join(tfds_builder.split_names(data_dir))


def holdout_values(source, column: str, min_images: int) -> list[str]:
  """Values of `column` with at least min_images records that share a culture with another value."""
  values = dataset.column_values(source, column)
  cultures = dataset.column_values(source, "culture")
  counts = collections.Counter(values)
  sources_of = collections.defaultdict(set)
  for value, culture in zip(values, cultures):
    if culture and counts[value] >= min_images:
      sources_of[culture].add(value)
  shared = {v for group in sources_of.values() if len(group) > 1 for v in group}
  return sorted(shared)


def held_out_report(workdir: pathlib.Path, data_dir, rule: str) -> dict:
  """The metrics report of the run in `workdir` on every record matching `rule`."""
  trained = trained_model.load(workdir, batch_size=32)
  source = dataset.filtered(dataset.open_split(data_dir, all_splits(data_dir)), rule,
                            keep_matching=True)
  logits, _ = evaluation.split_logits(trained, source, flip_tta=False)
  probs = {task: calibration.softmax(logits[task]) for task in labels.TASKS}
  return metrics.evaluate_predictions(balance.read_split_labels(source), probs)


def run(config, root, column: str, min_images: int = 20) -> dict:
  root = pathlib.Path(root).resolve()
  root.mkdir(parents=True, exist_ok=True)
  data_dir = dataset.ensure_built(config.data)
  values = holdout_values(dataset.open_split(data_dir, all_splits(data_dir)), column, min_images)
  if not values:
    raise ValueError(f"no value of {column!r} with {min_images} or more images shares a "
                     "culture with another: nothing to hold out")
  logging.info("Holding out %s in turn: %s", column, ", ".join(values))
  folds = {}
  for value in values:
    rule = f"{column}={value}"
    fold_config = copy.deepcopy(config)
    fold_config.data.exclude = rule
    workdir = root / f"holdout_{value}"
    trainer.train_and_evaluate(fold_config, workdir)
    report = held_out_report(workdir, data_dir, rule)
    folds[value] = {"images": report["num_images"], **trainer.flat_report(report)}
    logging.info("held out %s: %s", rule, folds[value])
  keys = [k for k in next(iter(folds.values())) if k != "images"]
  mean = {k: float(np.nanmean([f[k] for f in folds.values()])) for k in keys}
  result = {"column": column, "folds": folds, "mean": mean}
  (root / "crossval.json").write_text(json.dumps(result, indent=2))
  (root / "crossval.md").write_text(markdown_table(result))
  print(markdown_table(result))
  return result


def markdown_table(result: dict) -> str:
  tasks = [f"{t}_balanced_accuracy" for t in labels.TASKS]
  lines = [f"| held out ({result['column']}) | images | " + " | ".join(
               t.split("_")[0] + " bal." for t in tasks) + " | mean bal. | all three |",
           "|---" * (len(tasks) + 4) + "|"]
  rows = list(result["folds"].items()) + [("mean", {"images": "", **result["mean"]})]
  for name, fold in rows:
    cells = [_percent(fold[t]) for t in tasks + ["mean_balanced_accuracy", "all_three_accuracy"]]
    lines.append(f"| {name} | {fold['images']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _percent(value) -> str:
  return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"
