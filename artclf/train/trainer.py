"""The training run: data, model, phases, evaluation on validation, checkpoints, logs.

`train_and_evaluate(config, workdir)` is what `python -m artclf.train` calls. A run is one
or two phases (config.phase1, config.phase2), each training the parameters its
`trainable` setting selects. A phase whose lower trunk stages are frozen can train on
cached features of those stages (see `artclf.data.feature_cache`). Every epoch ends with an
evaluation on the validation split; the best checkpoint by `config.selection_metric`
is kept, and the next phase starts from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Iterator

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import labels
from artclf.data import balance, dataset, feature_cache, pipeline, transforms
from artclf.eval import calibration, metrics
from artclf.models import imagenet
from artclf.models import classifier as model_lib
from artclf.train import checkpoints, metric_writer, steps
from artclf.train import optimizer as optimizer_lib


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint was kept."""


# ---------------------------------------------------------------------------
# Building blocks from the config.


def model_spec(config) -> model_lib.ModelSpec:
  return model_lib.ModelSpec.from_config(config.model)


def build_model(config, seed: int = 0, load_weights: bool = True) -> model_lib.ArtClassifier:
  model = model_lib.ArtClassifier(model_spec(config), rngs=nnx.Rngs(seed))
  if load_weights and config.model.pretrained:
    imagenet.load_pretrained_trunks(model, config.weights_dir or None,
                                   config.weights_tarball or None)
  return model


def pipeline_config(config, batch_size: int) -> pipeline.PipelineConfig:
  return pipeline.PipelineConfig(
      batch_size=batch_size, seed=config.seed, augmentation=transforms.from_config(config.data.augment),
      sampling=config.data.sampling, sampling_power=config.data.sampling_power,
      worker_count=config.data.worker_count, read_threads=config.data.read_threads)


def class_weights_from(source, loss_config) -> dict[str, np.ndarray] | None:
  if not loss_config.class_weights:
    return None
  counts = balance.class_counts(balance.read_split_labels(source))
  return {task: balance.class_weights(counts[task], power=loss_config.class_weight_power)
          for task in labels.TASKS}


# ---------------------------------------------------------------------------
# Evaluation on a split, from images or from cached features.


def _pad_batch(batch: dict, size: int) -> dict:
  def pad(x):
    x = np.asarray(x)
    return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)]) if len(x) < size else x
  return jax.tree.map(pad, batch)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def evaluate_batches(eval_fn, state, batches, mesh, batch_size: int) -> dict:
  """Runs eval_fn over host batches; returns the `artclf.eval.metrics` report and raw outputs."""
  all_logits = {task: [] for task in labels.TASKS}
  all_labels = {task: [] for task in labels.TASKS}
  for batch in batches:
    count = len(batch[labels.TASKS[0]])
    inputs = {k: v for k, v in batch.items() if k in ("image", "features")}
    logits = eval_fn(state, steps.global_batch(_pad_batch(inputs, batch_size), mesh))
    for task in labels.TASKS:
      all_logits[task].append(np.asarray(jax.device_get(logits[task]))[:count])
      all_labels[task].append(np.asarray(batch[task])[:count])
  logits = {task: np.concatenate(v) for task, v in all_logits.items()}
  label_ids = {task: np.concatenate(v) for task, v in all_labels.items()}
  probs = {task: calibration.softmax(l) for task, l in logits.items()}
  return {"report": metrics.evaluate_predictions(label_ids, probs), "logits": logits,
          "labels": label_ids}


def _cached_eval_batches(cached: dict, label_ids: dict, batch_size: int) -> Iterator[dict]:
  n = len(label_ids[labels.TASKS[0]])
  for start in range(0, n, batch_size):
    batch = {task: ids[start:start + batch_size] for task, ids in label_ids.items()}
    batch["features"] = {name: f[0, start:start + batch_size].astype(np.float32)
                         for name, f in cached.items()}
    yield batch


# ---------------------------------------------------------------------------
# The run.


@dataclasses.dataclass
class _Phase:
  index: int
  config: ml_collections.ConfigDict
  start_stage: int
  use_cache: bool


def _phases(config, num_stages: int) -> list[_Phase]:
  phases = []
  for index, phase_config in enumerate((config.phase1, config.phase2)):
    if phase_config.epochs <= 0:
      continue
    start_stage = optimizer_lib.first_trainable_stage(phase_config.trainable, num_stages)
    mode = config.feature_cache.enabled
    if mode not in ("auto", "always", "never"):
      raise ValueError(f"feature_cache.enabled={mode!r}: use 'auto', 'always' or 'never'")
    use_cache = start_stage > 0 and (
        mode == "always" or (mode == "auto" and jax.default_backend() == "cpu"))
    phases.append(_Phase(index, phase_config, start_stage, use_cache))
  if not phases:
    raise ValueError("no phase has epochs > 0: set config.phase1.epochs")
  return phases


def save_config(config, workdir: pathlib.Path) -> None:
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) the run in `workdir`; returns the best validation report."""
  workdir = pathlib.Path(workdir).resolve()
  workdir.mkdir(parents=True, exist_ok=True)
  save_config(config, workdir)
  is_main = jax.process_index() == 0
  writer = metric_writer.MetricWriter(workdir, enabled=is_main)
  run_checkpoints = checkpoints.RunCheckpoints(workdir, keep=config.keep_checkpoints)
  mesh = steps.make_mesh()
  num_devices = mesh.devices.size
  for name, size in (("batch_size", config.batch_size), ("eval_batch_size", config.eval_batch_size)):
    if size % num_devices:
      raise ValueError(f"config.{name}={size} must be a multiple of the {num_devices} devices")

  data_dir = dataset.ensure_built(config.data)
  train_source = dataset.open_split(data_dir, config.data.train_split, config.data.max_examples)
  val_source = dataset.open_split(data_dir, config.data.val_split, config.data.max_examples)
  logging.info("Data: %d train, %d val examples from %s; %d device(s), %d host(s)",
               len(train_source), len(val_source), data_dir, num_devices, jax.process_count())
  class_weights = class_weights_from(train_source, config.loss)
  if class_weights:
    logging.info("Class weights: %s", {t: np.round(w, 2).tolist() for t, w in class_weights.items()})

  model = build_model(config, config.seed)
  phases = _phases(config, model.num_stages)

  resume = run_checkpoints.latest_meta()
  run_meta = {"best_metric": -math.inf, "best_step": None, "phase_index": phases[0].index,
              "phase_step": 0, "global_offset": 0, "epochs_since_best": 0, "stopped_early": False}
  if resume is not None:
    run_meta.update(resume[1]["run"])
    logging.info("Resuming from step %d (phase %d, step %d of the phase)", resume[0],
                 run_meta["phase_index"] + 1, run_meta["phase_step"])

  best_report = None
  for phase in phases:
    if phase.index < run_meta["phase_index"]:
      continue
    steps_in_phase = phase.config.epochs * (len(train_source) // config.batch_size)
    if phase.index == run_meta["phase_index"] and (
        run_meta.get("stopped_early") or run_meta["phase_step"] >= steps_in_phase):
      # This phase had finished before the restart (a longer phase would continue).
      run_meta["global_offset"] += run_meta["phase_step"]
      run_meta["phase_step"] = 0
      continue
    if phase.index > run_meta["phase_index"]:
      # A new phase starts from the best weights so far.
      _load_best_into(model, workdir)
      run_meta.update(phase_index=phase.index, phase_step=0, epochs_since_best=0,
                      stopped_early=False)
    best_report = _run_phase(config, phase, model, train_source, val_source, class_weights,
                             mesh, run_checkpoints, writer, run_meta, resume, workdir) or best_report
    resume = None
    run_meta["global_offset"] += run_meta["phase_step"]
    run_meta["phase_step"] = 0
  run_checkpoints.wait()
  run_checkpoints.close()
  writer.close()
  summary = {"best_step": run_meta["best_step"],
             config.selection_metric: run_meta["best_metric"]}
  if is_main:
    (workdir / "train_summary.json").write_text(json.dumps(summary, indent=2))
  return summary


def _load_best_into(model: model_lib.ArtClassifier, workdir: pathlib.Path) -> None:
  abstract = nnx.to_pure_dict(nnx.state(model))
  restored = checkpoints.restore_best_state(workdir, abstract)
  state = nnx.state(model)
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(model, state)


def _model_meta(config, phase: _Phase) -> dict:
  return {"model": config.model.to_dict(), "trainable": phase.config.trainable,
          "image_size": config.data.augment.image_size}


def _run_phase(config, phase: _Phase, model, train_source, val_source, class_weights, mesh,
               run_checkpoints: checkpoints.RunCheckpoints, writer, run_meta: dict, resume,
               workdir) -> dict | None:
  phase_config = phase.config
  aug = transforms.from_config(config.data.augment)
  num_devices = mesh.devices.size
  batch_size = config.batch_size
  eval_batch_size = config.eval_batch_size
  steps_per_epoch = len(train_source) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f"{len(train_source)} training examples are fewer than one batch of {batch_size}")
  total_steps = phase_config.epochs * steps_per_epoch
  logging.info("Phase %d: train %s for %d epochs (%d steps of %d), lr %g%s", phase.index + 1,
               phase_config.trainable, phase_config.epochs, total_steps, batch_size,
               phase_config.learning_rate, ", on cached features" if phase.use_cache else "")

  schedule = optimizer_lib.learning_rate_schedule(
      phase_config.learning_rate, steps_per_epoch, phase_config.decay_rate,
      phase_config.decay_epochs, phase_config.warmup_steps)
  tx = optimizer_lib.make_optimizer(config.optimizer, schedule)
  is_trainable = optimizer_lib.trainable_filter(phase_config.trainable, model.num_stages)
  ema_decay = phase_config.ema_decay
  graphdef, state = steps.init_train_state(model, is_trainable, tx,
                                           jax.random.PRNGKey(config.seed + 1000 * phase.index),
                                           ema_decay=ema_decay)
  data_state = None
  if resume is not None and run_meta["phase_step"] > 0:
    try:
      state, _, data_state = run_checkpoints.restore_latest(resume[0], state)
    except ValueError as error:
      raise ValueError(
          f"the checkpoint at step {resume[0]} in {workdir} does not fit this config (was the "
          "model or optimiser changed?). Resume with the run's own config "
          f"({workdir / 'config.json'}) or start a new --workdir.\n{error}") from None
    # The frozen stages feed the feature cache: take them from the checkpoint too.
    nnx.update(model, steps.model_params(state), state.frozen, state.batch_stats)
  state = steps.put_replicated(state, mesh)
  start_step = int(run_meta["phase_step"])

  # Without the cache the step runs the whole network; frozen parameters just get no update.
  static = dict(graphdef=graphdef, start_stage=phase.start_stage if phase.use_cache else 0)
  train_fn = steps.jit_train_step(
      mesh, tx=tx, schedule=schedule, task_weights=dict(config.loss.task_weights),
      class_weights=class_weights, label_smoothing=config.loss.label_smoothing,
      ema_decay=ema_decay, **static)
  eval_fn = steps.jit_eval_step(mesh, **static)

  # Training and validation inputs: cached features, or the grain pipeline.
  if phase.use_cache:
    frozen_model = model
    features_fn = _sharded_features_fn(frozen_model, phase.start_stage, mesh)
    views = list(range(config.feature_cache.num_views)) if _augmenting(aug) else [None]
    frozen_arrays = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(
        nnx.state(model, nnx.Not(nnx.All(nnx.Param, optimizer_lib.trainable_filter(
            phase_config.trainable, model.num_stages))))))]
    cache_dir = config.feature_cache.get("dir") or None

    def cached_features(split: str, source, split_views):
      indices = np.arange(len(source))
      key = feature_cache.cache_key(
          {"data": feature_cache.source_digest(source), "views": split_views,
           "augment": dataclasses.asdict(aug),
           "seed": config.seed, "end_stage": phase.start_stage,
           # Only what shapes the frozen stages' outputs (the heads and SE block do not).
           "model": {k: config.model[k] for k in ("trunk", "compute_dtype", "submodels")}},
          frozen_arrays)
      return indices, feature_cache.load_or_compute(cache_dir, key, lambda: feature_cache.compute_features(
          features_fn, source, indices, split_views, aug, config.seed,
          _round_up(eval_batch_size, num_devices), what=f"caching {split} features"))

    train_indices, train_cache = cached_features("train", train_source, views)
    val_indices, val_cache = cached_features("val", val_source, [None])
    cached = feature_cache.CachedBatches(train_cache, feature_cache.read_labels(train_source, train_indices),
                                    batch_size, config.seed, config.data.sampling,
                                    config.data.sampling_power)
    val_labels = feature_cache.read_labels(val_source, val_indices)
    next_batch = lambda step: cached.batch(step, jax.process_index(), jax.process_count())
    val_batches = lambda: _cached_eval_batches(val_cache, val_labels, eval_batch_size)
    get_data_state = lambda: {}
  else:
    train_iter = iter(pipeline.make_dataset(
        train_source, train=True, config=pipeline_config(config, batch_size // jax.process_count())))
    if data_state:
      train_iter.set_state(data_state)
    next_batch = lambda step: next(train_iter)
    val_batches = lambda: iter(pipeline.make_dataset(
        val_source, train=False, config=pipeline_config(config, eval_batch_size // jax.process_count())))
    get_data_state = lambda: train_iter.get_state()

  def checkpoint_meta(phase_step: int) -> dict:
    meta = dict(run_meta, phase_index=phase.index, phase_step=phase_step)
    return {"run": meta, **_model_meta(config, phase)}

  def save(phase_step: int) -> None:
    run_checkpoints.save(run_meta["global_offset"] + phase_step, state, checkpoint_meta(phase_step),
                         get_data_state())

  best_report = None
  pending_metrics = []
  epoch_counts: dict[str, float] = {}
  last_log_time, last_log_step = time.time(), start_step
  for phase_step in range(start_step, total_steps):
    state, step_metrics = train_fn(state, steps.global_batch(next_batch(phase_step), mesh))
    pending_metrics.append(step_metrics)
    done = phase_step + 1
    end_of_epoch = done % steps_per_epoch == 0
    if done % config.log_every_steps == 0 or end_of_epoch or done % config.checkpoint_every_steps == 0:
      fetched = jax.device_get(pending_metrics)
      pending_metrics = []
      if any(int(m["nonfinite"]) for m in fetched):
        bad = next(i for i, m in enumerate(fetched) if int(m["nonfinite"]))
        last = run_checkpoints.latest.latest_step()
        raise TrainingDiverged(
            f"the loss became NaN or infinite at step {run_meta['global_offset'] + done - len(fetched) + bad + 1} "
            f"(learning rate {float(fetched[bad]['learning_rate']):.3g}); training stopped. "
            f"The last good checkpoint ({'none yet' if last is None else f'step {last}'}) is kept in "
            f"{workdir}. Lower the learning rate or set config.optimizer.clip_norm.")
      for m in fetched:
        for key, value in m.items():
          epoch_counts[key] = epoch_counts.get(key, 0.0) + float(value)
      now = time.time()
      steps_per_sec = (done - last_log_step) / max(now - last_log_time, 1e-9)
      last_log_time, last_log_step = now, done
      record = {k: float(np.mean([m[k] for m in fetched])) for k in
                ("loss", "culture_loss", "medium_loss", "period_loss", "grad_norm", "learning_rate")}
      record.update(phase=phase.index + 1, steps_per_sec=steps_per_sec,
                    images_per_sec=steps_per_sec * batch_size)
      writer.write(record, run_meta["global_offset"] + done, prefix="train/")
      logging.info("step %d (phase %d, epoch %.2f): loss %.4f, %.2f steps/s, %.1f images/s, lr %.3g",
                   run_meta["global_offset"] + done, phase.index + 1, done / steps_per_epoch,
                   record["loss"], steps_per_sec, record["images_per_sec"], record["learning_rate"])
    if end_of_epoch:
      # Epochs count over the whole run, so that phase 2 continues phase 1's curves.
      epoch = (run_meta["global_offset"] + done) // steps_per_epoch
      train_record = {"epoch": epoch, "split": "train", "phase": phase.index + 1,
                      "loss": epoch_counts["loss"] / steps_per_epoch}
      for task in labels.TASKS:
        train_record[f"{task}_accuracy"] = (epoch_counts[f"{task}_correct"] /
                                            max(epoch_counts[f"{task}_known"], 1))
      epoch_counts = {}
      evaluation = evaluate_batches(eval_fn, state, val_batches(), mesh, eval_batch_size)
      report = evaluation["report"]
      val_record = {"epoch": epoch, "split": "val", "phase": phase.index + 1,
                    **_flat_report(report)}
      global_step = run_meta["global_offset"] + done
      writer.write(train_record, global_step, prefix="epoch_train/")
      writer.write(val_record, global_step, prefix="epoch_val/")
      logging.info("epoch %d: train acc %s | val acc %s, mean %.4f, balanced %.4f, all three %.4f",
                   epoch, _task_figures(train_record), _task_figures(val_record),
                   report["mean_accuracy"], report["mean_balanced_accuracy"],
                   report["all_three"]["accuracy"])
      # 'last' keeps the latest epoch: for a final fit whose epochs were chosen beforehand
      # on validation (the validation split may then be part of the training data).
      value = (float(global_step) if config.selection_metric == "last"
               else _selection_value(report, config.selection_metric))
      if value > run_meta["best_metric"]:
        run_meta.update(best_metric=value, best_step=global_step, epochs_since_best=0)
        nnx.update(model, steps.model_params(state), state.frozen, state.batch_stats)
        run_checkpoints.save_best(global_step, nnx.to_pure_dict(nnx.state(model)),
                                  {**checkpoint_meta(done), "val_report": _flat_report(report)})
        best_report = report
      else:
        run_meta["epochs_since_best"] += 1
      patience = phase_config.early_stopping_patience
      stop_early = bool(patience) and run_meta["epochs_since_best"] >= patience
      run_meta["stopped_early"] = stop_early
      save(done)
      if stop_early:
        logging.info("Early stopping: no better %s for %d epochs", config.selection_metric, patience)
        run_meta["phase_step"] = done
        break
    elif done % config.checkpoint_every_steps == 0:
      save(done)
    run_meta["phase_step"] = done
  run_checkpoints.wait()
  nnx.update(model, steps.model_params(state), state.frozen, state.batch_stats)
  return best_report


def _augmenting(aug: transforms.AugmentConfig) -> bool:
  return (aug.random_crop or aug.horizontal_flip or aug.max_rotation_deg > 0 or aug.brightness > 0
          or aug.contrast > 0)


def _sharded_features_fn(model, end_stage: int, mesh):
  """A jitted model.features(images, end_stage) over the mesh, padding to the device count.

  Nets whose trunks hold identical weights (the three ImageNet-initialised submodels)
  share one computation.
  """
  groups: dict[str, list[str]] = {}
  for name, net in model.nets.items():
    trunk_arrays = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.state(net.trunk)))]
    groups.setdefault(feature_cache.cache_key({}, trunk_arrays), []).append(name)
  num_devices = mesh.devices.size
  runners = []
  for names in groups.values():
    graphdef, net_state = nnx.split(model.nets[names[0]])
    net_state = steps.put_replicated(net_state, mesh)
    run = jax.jit(lambda state, images, graphdef=graphdef: nnx.merge(graphdef, state).features(
        images, end_stage=end_stage))
    runners.append((names, run, net_state))

  def features_fn(images: np.ndarray) -> dict[str, np.ndarray]:
    count = len(images)
    padded = _pad_batch({"image": images}, _round_up(count, num_devices))["image"]
    inputs = steps.global_batch({"image": padded}, mesh)["image"]
    out = {}
    for names, run, net_state in runners:
      value = np.asarray(jax.device_get(run(net_state, inputs)))[:count]
      out.update({name: value for name in names})
    return out

  return features_fn


def _selection_value(report: dict, metric: str) -> float:
  if metric in report and isinstance(report[metric], (int, float)):
    value = report[metric]
  elif metric == "all_three_accuracy":
    value = report["all_three"]["accuracy"]
  else:
    raise ValueError(f"unknown selection_metric {metric!r}: use mean_accuracy, "
                     "mean_balanced_accuracy, all_three_accuracy or last")
  return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _flat_report(report: dict) -> dict:
  flat = {"mean_accuracy": report["mean_accuracy"],
          "mean_balanced_accuracy": report["mean_balanced_accuracy"],
          "all_three_accuracy": report["all_three"]["accuracy"]}
  for task in labels.TASKS:
    flat[f"{task}_accuracy"] = report["tasks"][task]["accuracy"]
    flat[f"{task}_balanced_accuracy"] = report["tasks"][task]["balanced_accuracy"]
  return flat


def _task_figures(record: dict) -> str:
  return "/".join(f"{record[f'{task}_accuracy']:.3f}" for task in labels.TASKS)
