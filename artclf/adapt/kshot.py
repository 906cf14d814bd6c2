"""What a few labelled photographs buy: k-shot leave-one-source-out.

  python -m artclf.crossval --config=configs/cpu_quick.py --holdout_column=museum \
      --workdir=checkpoints/crossval_museum --shots=0,5,10,20 --draws=5

For each source that can be held out (`artclf.train.crossval.holdout_values`), the run
trained without it (ROOT/holdout_<value>, trained here unless it is there already) is
adapted as `artclf.adapt` adapts it, in memory: with k photographs per class of the
held-out source (for every task and class with at least 2k such photographs; draw d
draws them with seed d), and scored on the source's other photographs. k = 0 is the
run as trained. Features come from the per-photograph store, so each photograph passes
the trunk once for all folds, draws and k. Writes ROOT/kshot.json and ROOT/kshot.md
(mean and spread over the draws, per source and k, and the mean over sources).
"""

from __future__ import annotations

import copy
import json
import pathlib

import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.adapt import adapter, fit
from artclf.data import dataset
from artclf.eval import plots
from artclf.run import trained as trained_lib
from artclf.train import crossval, trainer

FIGURES = ("mean_balanced_accuracy",)  # and each task's balanced accuracy


def draw_shots(labels: dict[str, np.ndarray], scheme: scheme_lib.LabelScheme, shots: int,
               seed: int) -> np.ndarray:
  """Indices of k = `shots` rows per class of every task whose class has at least 2k rows
  (a row drawn for one task counts for the others too)."""
  rng = np.random.default_rng(seed)
  chosen: set[int] = set()
  for task in scheme.tasks:
    for class_id in range(scheme.num_classes(task)):
      members = np.flatnonzero(labels[task] == class_id)
      if shots and len(members) >= 2 * shots:
        have = [i for i in members if i in chosen]
        rest = rng.permutation([i for i in members if i not in chosen])
        chosen.update(int(i) for i in rest[:max(0, shots - len(have))])
  return np.array(sorted(chosen), np.int64)


def run(config, root, column: str, shots: list[int], draws: int, min_images: int = 20,
        settings: ml_collections.ConfigDict | None = None) -> dict:
  root = pathlib.Path(root).resolve()
  root.mkdir(parents=True, exist_ok=True)
  settings = settings or adapter.default_config()
  data_dir = dataset.ensure_built(config.data)
  config, scheme, train, _ = trainer.open_data(config, data_dir)
  everything = dataset.open_split(data_dir, crossval.all_splits(data_dir))
  values = crossval.holdout_values(everything, train, column, scheme, min_images)
  if not values:
    raise ValueError(f"no value of {column!r} with {min_images} or more images can be held out")
  folds = {}
  for value in values:
    rule = f"{column}={value}"
    fold_config = copy.deepcopy(config)
    fold_config.data.exclude = rule
    # Only scored here: no familiarity scorer (its fit passes every training image again).
    fold_config.familiarity.enabled = False
    workdir = root / f"holdout_{value}"
    trainer.train_and_evaluate(fold_config, workdir)
    held = dataset.filtered(everything, rule, keep_matching=True)
    folds[value] = _fold(workdir, held, scheme, shots, draws, settings)
    logging.info("held out %s: %s", rule, folds[value])
  result = {"column": column, "tasks": list(scheme.tasks), "shots": list(shots), "draws": draws,
            "settings": settings.to_dict(), "folds": folds, "mean": _mean_over_folds(folds, shots)}
  (root / "kshot.json").write_text(json.dumps(result, indent=2))
  (root / "kshot.md").write_text(markdown_table(result))
  save_curve(result, root / "kshot.png")
  print(markdown_table(result))
  return result


def _fold(workdir: pathlib.Path, held, scheme, shots: list[int], draws: int, settings) -> dict:
  """{k: {figure: [one value per draw]}} of the run in `workdir` on the held-out records."""
  base = trained_lib.load(workdir, batch_size=32)
  config = base.config
  frozen = adapter.frozen_features(base, settings)
  mesh, first = frozen.mesh, frozen.plan.start_stage
  base_train, _ = adapter.base_rows(config, scheme, frozen)
  labels = dataset.read_labels(held, scheme)
  photos = adapter.photo_rows(frozen, [held[i]["image"] for i in range(len(held))], labels,
                              settings.example_weight)
  results = {}
  for k in shots:
    per_draw = []
    for draw in range(1 if k == 0 else draws):
      chosen = draw_shots(labels, scheme, k, seed=draw)
      rest = np.setdiff1d(np.arange(len(photos)), chosen)
      model = base.model
      if len(chosen):
        model = nnx.clone(base.model)
        fit.train_heads(model, fit.concat([base_train, photos.take(chosen)]), scheme, config,
                        settings, first, mesh)
      per_draw.append({"shots_used": int(len(chosen)), "scored": int(len(rest)),
                       **adapter.figures(model, photos.take(rest), scheme, first, mesh)})
    results[str(k)] = per_draw
  return results


def _summary(per_draw: list[dict], key: str) -> tuple[float, float]:
  values = [d[key] for d in per_draw if d.get(key) is not None]
  return (float(np.mean(values)), float(np.std(values))) if values else (float("nan"), 0.0)


def _mean_over_folds(folds: dict, shots: list[int]) -> dict:
  keys = [k for k in next(iter(folds.values()))[str(shots[0])][0] if k.endswith("accuracy")]
  return {str(k): {key: float(np.nanmean([_summary(f[str(k)], key)[0] for f in folds.values()]))
                   for key in keys} for k in shots}


def save_curve(result: dict, path) -> None:
  """Mean balanced accuracy against k, one line per held-out source and their mean."""
  key = "mean_balanced_accuracy"
  curves = {value: {int(k): _summary(per_draw, key) for k, per_draw in fold.items()}
            for value, fold in result["folds"].items()}
  curves["mean"] = {int(k): (means[key], 0.0) for k, means in result["mean"].items()}
  plots.save_shot_curves(curves, path, title=f"held out by {result['column']}: adapt with k "
                         "labelled photos per class")


def markdown_table(result: dict) -> str:
  tasks = [f"{t}_balanced_accuracy" for t in result["tasks"]]
  keys = ["mean_balanced_accuracy"] + tasks
  lines = [f"| held out ({result['column']}) | k | shots used | scored | mean bal. | " +
           " | ".join(t.split("_balanced")[0] + " bal." for t in tasks) + " |",
           "|---" * (len(keys) + 4) + "|"]
  for value, fold in result["folds"].items():
    for k, per_draw in fold.items():
      cells = []
      for key in keys:
        mean, spread = _summary(per_draw, key)
        cells.append("n/a" if np.isnan(mean) else
                     f"{100 * mean:.1f}" + (f" ± {100 * spread:.1f}" if len(per_draw) > 1 else ""))
      lines.append(f"| {value} | {k} | {per_draw[0]['shots_used']} | {per_draw[0]['scored']} | "
                   + " | ".join(cells) + " |")
  for k, means in result["mean"].items():
    lines.append(f"| mean | {k} | | | " + " | ".join(
        "n/a" if np.isnan(means.get(key, np.nan)) else f"{100 * means[key]:.1f}" for key in keys) + " |")
  return "\n".join(lines) + "\n"
