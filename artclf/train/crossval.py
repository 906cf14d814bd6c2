"""Leave-one-source-out validation: train without one source, score the model on it.

A model that learned which museum took a photograph looks fine on a test split drawn from
the same museums. Holding a whole source out of training and scoring the model on it
measures what a new collection would see. A source is held out only when training
without it still has a label of every class of every task (otherwise that class could
not be learned, and the run would refuse to start).

`run(config, root, column)` resolves the run's scheme once, from the config and the
whole training split, so that every fold has the same heads; trains one run per held-out
value of `column` in ROOT/holdout_<value> (each resumes if started again), scores each
on every record of that value in all splits, and writes ROOT/crossval.json and
ROOT/crossval.md.
"""

from __future__ import annotations

import collections
import copy
import json
import pathlib

import numpy as np
from absl import logging

from artclf import scheme as scheme_lib
from artclf.data import balance, dataset, tfds_builder
from artclf.eval import calibration, evaluation, metrics
from artclf.run import trained as trained_lib
from artclf.train import trainer


def all_splits(data_dir) -> str:
  """The split expression of every record, such as 'train+val+test'."""
  return "+".join(tfds_builder.split_names(data_dir))


def holdout_values(records, train: dataset.LabelledSplit, column: str,
                   scheme: scheme_lib.LabelScheme, min_images: int) -> list[str]:
  """Values of `column` with at least min_images of `records`, without which the training
  split still has a label of every class of the scheme."""
  counts = collections.Counter(dataset.column_values(records, column))
  train_values = np.asarray(dataset.column_values(train.source, column))
  held = []
  for value in sorted(v for v, n in counts.items() if n >= min_images):
    rest = train_values != value
    if not balance.missing_classes({t: ids[rest] for t, ids in train.labels.items()}, scheme):
      held.append(value)
  return held


def held_out_report(workdir: pathlib.Path, data_dir, rule: str) -> dict:
  """The metrics report (uncalibrated) of the run in `workdir` on every record matching `rule`."""
  trained = trained_lib.load(workdir, batch_size=32)
  records = evaluation.open_records(trained, all_splits(data_dir), data_dir, select=rule)
  logits = evaluation.split_outputs(trained, records.source, flip_tta=False)["logits"]
  probs = {task: calibration.softmax(logits[task]) for task in trained.scheme.tasks}
  return metrics.evaluate_predictions(records.labels, probs, trained.scheme)


def run(config, root, column: str, min_images: int = 20) -> dict:
  root = pathlib.Path(root).resolve()
  root.mkdir(parents=True, exist_ok=True)
  data_dir = dataset.ensure_built(config.data)
  config, scheme, train, _ = trainer.open_data(config, data_dir)
  values = holdout_values(dataset.open_split(data_dir, all_splits(data_dir)), train, column,
                          scheme, min_images)
  if not values:
    raise ValueError(f"no value of {column!r} with {min_images} or more images can be held "
                     "out: without any of them, some class would have no training label")
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
  result = {"column": column, "tasks": list(scheme.tasks),
            "all_tasks_name": scheme.all_correct_name, "folds": folds, "mean": mean}
  (root / "crossval.json").write_text(json.dumps(result, indent=2))
  (root / "crossval.md").write_text(markdown_table(result))
  print(markdown_table(result))
  return result


def markdown_table(result: dict) -> str:
  tasks = [f"{t}_balanced_accuracy" for t in result["tasks"]]
  lines = [f"| held out ({result['column']}) | images | " + " | ".join(
               t.split("_balanced")[0] + " bal." for t in tasks) +
           f" | mean bal. | {result['all_tasks_name']} |",
           "|---" * (len(tasks) + 4) + "|"]
  rows = list(result["folds"].items()) + [("mean", {"images": "", **result["mean"]})]
  for name, fold in rows:
    cells = [_percent(fold[t]) for t in tasks + ["mean_balanced_accuracy", "all_tasks_accuracy"]]
    lines.append(f"| {name} | {fold['images']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _percent(value) -> str:
  return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"
