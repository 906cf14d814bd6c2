"""A new run from a base run and a collection's corrections (see `adapt`).

  summary = adapter.adapt("checkpoints/cpu_quick", "photos/corrections.csv", "checkpoints/mine")

The base run's frozen part is kept; its upper part (heads, SE block; configs/adapt.py's
`trainable`) starts from the base run's weights and trains on the frozen part's features
of the base run's training split (from the feature cache) mixed with the collection's
photographs (each computed once, `artclf.data.feature_store`), those weighing
`example_weight`. A share of the collection's rows, drawn at random per class, is held
out: the base run and the new one are scored on it (before/after). The new run gets the
base run's config, its own best checkpoint, temperatures fitted on the base run's
validation split and the held-out rows, and a familiarity scorer fitted with the
collection's photographs among the training rows, so that they count as familiar.
BASE is never written to.
"""

from __future__ import annotations

import datetime
import importlib
import os
import pathlib
import shutil
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.adapt import corrections, fit, records
from artclf.data import dataset, feature_store
from artclf.eval import calibration, metrics
from artclf.mesh import make_mesh
from artclf.run import checkpoint as run_checkpoint
from artclf.run import finalize, neighbours
from artclf.run import trained as trained_lib
from artclf.train import checkpoints, phase_data, trainer
from artclf.train import optimizer as optimizer_lib
from artclf.train import workdir as workdir_lib

CONFIG_MODULE = "configs.adapt"


class AdaptError(ValueError):
  """Adapting cannot start (OUT exists, BASE is not a run, ...); the message says why."""


def default_config() -> ml_collections.ConfigDict:
  """configs/adapt.py's settings."""
  return importlib.import_module(CONFIG_MODULE).get_config()


def settings_from(config_overrides=None, holdout_fraction: float | None = None
                  ) -> ml_collections.ConfigDict:
  settings = default_config()
  overrides = dict(config_overrides or {})
  unknown = sorted(set(overrides) - set(settings.keys()))
  if unknown:
    raise AdaptError(f"unknown adapt setting(s) {', '.join(unknown)}: configs/adapt.py has "
                     f"{', '.join(sorted(settings.keys()))}")
  settings.update(overrides)
  if holdout_fraction is not None:
    settings.holdout_fraction = float(holdout_fraction)
  if not 0 <= settings.holdout_fraction < 1:
    raise AdaptError(f"holdout_fraction={settings.holdout_fraction}: use 0 (every row trains) "
                     "up to below 1")
  return settings


def adapt(base_workdir: str | os.PathLike, labels_csv: str | os.PathLike,
          out_workdir: str | os.PathLike, *, holdout_fraction: float | None = None,
          config_overrides: dict | ml_collections.ConfigDict | None = None,
          progress: Callable[[str, float], None] | None = None,
          photos_as_neighbours: bool = False) -> dict:
  """Writes to `out_workdir` a complete run adapted from `base_workdir` with the rows of
  `labels_csv`; returns its summary (also OUT/adapt_summary.json; see the module doc).

  Raises AdaptError, corrections.CorrectionsError or the loading errors of
  `artclf.run.trained.load` (one line each); nothing is written to OUT before the
  corrections are read and OUT is known to be free (or an interrupted adapt of the same
  inputs, which is then done again from its features).
  """
  started = time.time()
  report = progress or (lambda message, fraction: None)
  settings = settings_from(config_overrides, holdout_fraction)
  base, out = pathlib.Path(base_workdir).resolve(), pathlib.Path(out_workdir).resolve()
  if out == base or base in out.parents:
    raise AdaptError(f"--out={out} is the base run or inside it: the base run is never "
                     "written to; choose another folder")
  report("loading the base run", 0.0)
  base_run = trained_lib.load(base, batch_size=32)
  rows = corrections.read_corrections(labels_csv, base_run.scheme)
  inputs = {"base": str(base), "base_best_step": base_run.best_step, "csv": str(rows.csv_path),
            "csv_sha256": rows.sha256, "settings": settings.to_dict()}
  _claim(out, inputs)
  summary = _adapt_into(out, base_run, rows, settings, report)
  if photos_as_neighbours:  # the page adds its own photos, under the names it shows
    report("the taught photos among the neighbours", 0.95)
    add_neighbours(out, base, rows, base_run.scheme)
  summary["seconds"] = round(time.time() - started, 2)
  records.write_json(out / records.SUMMARY_FILE, summary)
  report("done", 1.0)
  print(summary_text(summary, base_run.scheme))
  return summary


def add_neighbours(out: pathlib.Path, base: pathlib.Path, rows: corrections.Corrections,
                   scheme: scheme_lib.LabelScheme) -> None:
  """Adds the CSV's photographs, with their labels, to the new run's nearest photos."""
  photos = [(row.image.name, row.image_bytes,
             {task: "" if row.labels[task] == scheme_lib.UNKNOWN
              else scheme.classes[task][row.labels[task]] for task in scheme.tasks})
            for row in rows.rows]
  neighbours.add_photos(trained_lib.load(out, batch_size=32), photos, related=[base])


def _claim(out: pathlib.Path, inputs: dict) -> None:
  """Makes OUT, or takes up an interrupted adapt of the same inputs; refuses anything else."""
  if out.exists() and any(out.iterdir()):
    started = records.read_json(out / records.INPUTS_FILE)
    if started != inputs or (out / records.SUMMARY_FILE).exists():
      raise AdaptError(f"{out} already exists{' (a finished adapt)' if started == inputs else ''}"
                       "; choose a new --out (an interrupted adapt of the same base run, CSV "
                       "and settings resumes there)")
    logging.info("Resuming the interrupted adapt in %s", out)
    shutil.rmtree(out / run_checkpoint.BEST_DIR, ignore_errors=True)
    return
  out.mkdir(parents=True, exist_ok=True)
  records.write_json(out / records.INPUTS_FILE, inputs)


def _adapt_into(out: pathlib.Path, base_run: trained_lib.TrainedModel,
                rows: corrections.Corrections, settings, report) -> dict:
  config, scheme = base_run.config, base_run.scheme
  frozen = frozen_features(base_run, settings)
  model, mesh, first = nnx.clone(base_run.model), frozen.mesh, frozen.plan.start_stage
  report("features of the base run's training data", 0.1)
  base_train, base_val = base_rows(config, scheme, frozen)
  report(f"features of {len(rows)} photographs", 0.3)
  context = photo_context(frozen)
  user = photo_rows(frozen, [r.image_bytes for r in rows.rows],
                    {t: np.array([r.labels[t] for r in rows.rows], np.int32) for t in scheme.tasks},
                    settings.example_weight)
  held = holdout_rows(user.labels, scheme, settings.holdout_fraction, settings.seed)
  taught = np.setdiff1d(np.arange(len(user)), held)
  digests = [feature_store.image_digest(r.image_bytes) for r in rows.rows]
  earlier = _earlier_rows(base_run, context, scheme, set(digests), settings.example_weight)
  report("training", 0.5)
  before = figures(base_run.model, user.take(held), scheme, first, mesh)
  step = fit.train_heads(model, fit.concat([base_train, user.take(taught)] + earlier), scheme,
                         config, settings, first, mesh)
  after = figures(model, user.take(held), scheme, first, mesh)
  report("calibration and familiarity", 0.8)
  _save_run(out, model, config, scheme, step, mesh, first,
            train=fit.concat([base_train, user] + earlier),
            val=fit.concat([base_val, user.take(held)]))
  _save_taught(out, context, user, digests, earlier)
  lineage = _lineage(base_run, rows, held, taught, settings)
  records.write_json(out / records.LINEAGE_FILE, lineage)
  return {"out": str(out), "base": str(base_run.workdir), "csv": str(rows.csv_path),
          "csv_sha256": rows.sha256, "rows_used": len(rows), "rows_train": int(len(taught)),
          "rows_holdout": int(len(held)), "rows_earlier": int(sum(len(e) for e in earlier)),
          "skipped": list(rows.skipped), "before": before, "after": after}


def frozen_features(base_run: trained_lib.TrainedModel, settings) -> phase_data.FrozenFeatures:
  """The frozen part below settings.trainable of the base run, and its features."""
  model = base_run.model
  first = optimizer_lib.first_trainable_stage(settings.trainable, model.num_stages)
  if first == 0:
    raise AdaptError(f"adapt needs a frozen part: trainable={settings.trainable!r} trains "
                     "every stage (use 'heads' or 'last:N')")
  # As training caches them: the pooled vectors where the heads alone read them (no SE).
  heads_alone = first == model.num_stages and model.pooled_stage is not None
  plan = phase_data.PhasePlan(0, ml_collections.ConfigDict({"trainable": settings.trainable}),
                              first, use_cache=True,
                              cache_stage=model.pooled_stage if heads_alone else first)
  config = base_run.config
  return phase_data.FrozenFeatures(config, plan, model, make_mesh(),
                                   config.eval_batch_size // jax.process_count())


def base_rows(config, scheme, frozen: phase_data.FrozenFeatures) -> tuple[fit.Rows, fit.Rows]:
  """The base run's training and validation rows: eval-view features from the cache."""
  data_dir = dataset.ensure_built(config.data)
  _, _, train, val = trainer.open_data(config, data_dir)
  train_features = frozen(train, [None], frozen.train_dtype)
  val_features = frozen(val, [None], np.float32)
  return (fit.Rows({k: v[0] for k, v in train_features.items()}, train.labels,
                   np.ones(len(train), np.float32)),
          fit.Rows({k: v[0] for k, v in val_features.items()}, val.labels,
                   np.ones(len(val), np.float32)))


def photo_context(frozen: phase_data.FrozenFeatures) -> str:
  """What the taught photographs' features depend on: the frozen weights, the view."""
  return frozen.context(frozen.train_dtype)


def photo_rows(frozen: phase_data.FrozenFeatures, images: list[bytes],
               labels: dict[str, np.ndarray], weight: float) -> fit.Rows:
  """Rows of photographs (encoded bytes), their features computed once per photograph."""
  features = frozen.photos(images, frozen.train_dtype)
  return fit.Rows(features, labels, np.full(len(images), weight, np.float32))


def holdout_rows(labels: dict[str, np.ndarray], scheme: scheme_lib.LabelScheme,
                 fraction: float, seed: int) -> np.ndarray:
  """Indices of the held-out rows: `fraction` of each class (by the row's labels of every
  task together), rounded, at random; never every row of a class."""
  if not fraction:
    return np.zeros(0, np.int64)
  keys = ["|".join(str(labels[t][i]) for t in scheme.tasks) for i in range(len(labels[scheme.tasks[0]]))]
  rng = np.random.default_rng(seed)
  held = []
  for key in sorted(set(keys)):
    members = np.array([i for i, k in enumerate(keys) if k == key])
    count = min(int(round(fraction * len(members))), len(members) - 1)
    held.extend(rng.permutation(members)[:count].tolist())
  return np.array(sorted(held), np.int64)


def _earlier_rows(base_run, context: str, scheme, digests: set[str], weight: float
                  ) -> list[fit.Rows]:
  """The photographs an adapted base run was taught, but for those the new CSV relabels."""
  loaded = records.load_rows(base_run.workdir, context, scheme)
  if loaded is None:
    return []
  features, labels, earlier = loaded
  keep = np.array([i for i, d in enumerate(earlier) if d not in digests], np.int64)
  rows = fit.Rows(features, labels, np.full(len(earlier), weight, np.float32)).take(keep)
  rows.digests = [earlier[i] for i in keep]
  return [rows] if len(rows) else []


def figures(model, rows: fit.Rows, scheme, start_stage: int, mesh) -> dict | None:
  """The headline figures of `model` on the rows (None when there are none)."""
  if not len(rows):
    return None
  out = fit.outputs(model, rows, start_stage, mesh, 32)
  probs = {t: calibration.softmax(out["logits"][t]) for t in scheme.tasks}
  report = metrics.evaluate_predictions(rows.labels, probs, scheme)
  flat = trainer.flat_report(report)
  for mean, suffix in (("mean_accuracy", "_accuracy"), ("mean_balanced_accuracy", "_balanced_accuracy")):
    known = [flat[f"{t}{suffix}"] for t in scheme.tasks if _finite(flat[f"{t}{suffix}"])]
    if not _finite(flat[mean]) and known:
      flat[mean] = float(np.mean(known))  # over the tasks the rows have labels of
  return {"images": len(rows), **{k: float(v) if _finite(v) else None
                                  for k, v in flat.items()}}


def _save_run(out: pathlib.Path, model, config, scheme, step: int, mesh, start_stage: int,
              train: fit.Rows, val: fit.Rows) -> None:
  """config.json, the best checkpoint, calibration.json and familiarity.npz of OUT."""
  best_state = nnx.to_pure_dict(nnx.state(model))
  meta = {"run": {"best_step": step, "phase_index": 0, "phase_step": step}, "adapted": True,
          "model": config.model.to_dict(), "image_size": config.data.augment.image_size,
          "scheme": scheme.to_json(), "config": config.to_dict(),
          "params_digest": run_checkpoint.params_digest(best_state)}
  run_checkpoints = checkpoints.RunCheckpoints(out, keep=1)
  run_checkpoints.save_best(step, best_state, meta)
  run_checkpoints.wait()
  run_checkpoints.close()
  shutil.rmtree(out / "checkpoints", ignore_errors=True)  # no resumable state: none is kept
  workdir_lib.save_config(out, config)
  finalize.fit_and_save(out, config, scheme, step, fit.outputs(model, train, start_stage, mesh, 64),
                        fit.outputs(model, val, start_stage, mesh, 64),
                        write=jax.process_index() == 0)


def _save_taught(out: pathlib.Path, context: str, user: fit.Rows, digests: list[str],
                 earlier: list[fit.Rows]) -> None:
  rows = fit.concat([user] + earlier)
  all_digests = digests + [d for e in earlier for d in e.digests]
  records.save_rows(out, context, rows.features, rows.labels, all_digests)


def _lineage(base_run, rows: corrections.Corrections, held, taught, settings) -> dict:
  return {"base": str(base_run.workdir), "base_best_step": base_run.best_step,
          "base_lineage": records.read_lineage(base_run.workdir),
          "csv": str(rows.csv_path), "csv_sha256": rows.sha256,
          "rows_used": [rows.rows[i].line for i in taught],
          "rows_holdout": [rows.rows[i].line for i in held],
          "settings": settings.to_dict(),
          "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def summary_text(summary: dict, scheme: scheme_lib.LabelScheme) -> str:
  """The before/after figures as a few lines for the terminal."""
  lines = [f"adapted {summary['base']} -> {summary['out']}: {summary['rows_used']} rows used "
           f"({summary['rows_train']} trained, {summary['rows_holdout']} held out, "
           f"{len(summary['skipped'])} skipped) in {summary.get('seconds', 0):.1f} s"]
  if summary["before"] is None:
    lines.append("no row held out: no before/after figures (--holdout_fraction=0)")
    return "\n".join(lines)
  keys = [f"{t}_balanced_accuracy" for t in scheme.tasks] + ["mean_balanced_accuracy"]
  lines.append("held-out rows  " + "  ".join(f"{k.replace('_accuracy', '')}" for k in keys))
  for name in ("before", "after"):
    lines.append(f"{name:>13}  " + "  ".join(_percent(summary[name][k]) for k in keys))
  return "\n".join(lines)


def _finite(value) -> bool:
  return value is not None and bool(np.isfinite(value))


def _percent(value) -> str:
  return "n/a" if value is None else f"{100 * value:.1f}%"
