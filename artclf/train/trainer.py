"""The training run: data, model, phases, validation every epoch, checkpoints, logs.

`train_and_evaluate(config, workdir)` is what `python -m artclf.train` calls. A run is one
or two phases (config.phase1, config.phase2), each training the parameters its
`trainable` setting selects, on images or on cached outputs of the frozen stages
(`artclf.train.phase_data`). Every epoch ends with an evaluation on the validation
split; the best checkpoint by `config.selection_metric` is kept, and the next phase
starts from it. Started again on the same workdir, a run resumes from its last complete
checkpoint and follows the same trajectory; on several hosts every host runs this same
code on its own block of each batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import labels
from artclf.data import balance, dataset, transforms
from artclf.eval import calibration, familiarity, inference, metrics
from artclf.mesh import (data_sharded, fetch_replicated, make_mesh, on_every_host, put_replicated,
                         replicated, to_global)
from artclf.models import classifier as model_lib
from artclf.models import trunks
from artclf.train import checkpoints, metric_writer, phase_data, steps
from artclf.train import optimizer as optimizer_lib
from artclf.train import workdir as workdir_lib
from artclf.train.run_state import RunState

SELECTION_METRICS = ("mean_accuracy", "mean_balanced_accuracy", "all_three_accuracy", "last")


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint was kept."""


def build_model(config, seed: int = 0, load_weights: bool = True) -> model_lib.ArtClassifier:
  model = model_lib.ArtClassifier(model_lib.ModelSpec.from_config(config.model),
                                  rngs=nnx.Rngs(seed))
  if load_weights and config.model.pretrained:
    trunks.load_imagenet_weights(model.trunk_modules, config.model.trunk,
                                 config.weights_dir or None, config.weights_tarball or None)
  return model


def class_weights_from(source, loss_config) -> dict[str, np.ndarray] | None:
  if not loss_config.class_weights:
    return None
  counts = balance.class_counts(balance.read_split_labels(source))
  return {task: balance.class_weights(counts[task], power=loss_config.class_weight_power)
          for task in labels.TASKS}


@dataclasses.dataclass
class _Run:
  """What every phase of one run shares."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  mesh: jax.sharding.Mesh
  checkpoints: checkpoints.RunCheckpoints
  writer: metric_writer.MetricWriter
  model: model_lib.ArtClassifier
  train_source: object
  val_source: object
  class_weights: dict | None

  @property
  def steps_per_epoch(self) -> int:
    return len(self.train_source) // self.config.batch_size


# ---------------------------------------------------------------------------
# The run, top to bottom.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) the run in `workdir`; returns {best_step, selection metric}."""
  workdir = pathlib.Path(workdir).resolve()
  config = workdir_lib.absolute_paths(config)
  is_main = jax.process_index() == 0
  with workdir_lib.locked(workdir) if is_main else contextlib.nullcontext():
    # Everything that can refuse the run comes before the first write to the workdir.
    for change in workdir_lib.check_resume(workdir, config):
      logging.info("Resuming with a changed setting: %s", change)
    mesh = make_mesh()
    _check_settings(config, mesh)
    data_dir = dataset.ensure_built(config.data)
    train_source, val_source = (
        dataset.open_split(data_dir, split, config.data.max_examples, config.data.exclude)
        for split in (config.data.train_split, config.data.val_split))
    if len(train_source) < config.batch_size:
      raise ValueError(f"{len(train_source)} training examples are fewer than one batch of "
                       f"{config.batch_size} (config.batch_size)")
    logging.info("Data: %d train, %d val examples from %s; %d device(s), %d host(s)",
                 len(train_source), len(val_source), data_dir, mesh.devices.size,
                 jax.process_count())
    model = build_model(config, config.seed)
    phases = phase_data.plan_phases(config, model.num_stages, jax.default_backend())

    if is_main:
      workdir_lib.save_config(workdir, config)
    run_checkpoints = checkpoints.RunCheckpoints(workdir, keep=config.keep_checkpoints)
    run = _restored_run_state(run_checkpoints, phases)
    writer = metric_writer.MetricWriter(workdir, enabled=is_main, resume_step=run.global_step)
    class_weights = class_weights_from(train_source, config.loss)
    if class_weights:
      logging.info("Class weights: %s",
                   {t: np.round(w, 2).tolist() for t, w in class_weights.items()})
    context = _Run(config, workdir, mesh, run_checkpoints, writer, model, train_source,
                   val_source, class_weights)

    for plan in phases:
      if plan.index < run.phase_index:
        continue
      if plan.index > run.phase_index:
        # A new phase starts from the best weights so far.
        _load_best_into(model, workdir, mesh)
        run.start_phase(plan.index)
      elif run.stopped_early or run.phase_step >= plan.config.epochs * context.steps_per_epoch:
        continue  # this phase had finished before the restart
      _run_phase(context, plan, run)

    run_checkpoints.wait()
    if config.familiarity.enabled:
      _fit_familiarity(context, run.best_step)
    run_checkpoints.close()
    writer.close()
    summary = {"best_step": run.best_step, config.selection_metric: run.best_metric}
    if is_main:
      (workdir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _check_settings(config, mesh) -> None:
  """Refuses settings that cannot work, before anything runs."""
  devices, hosts = mesh.devices.size, jax.process_count()
  for name in ("batch_size", "eval_batch_size"):
    if config[name] % devices:
      raise ValueError(f"config.{name}={config[name]} must be a multiple of the {devices} devices")
  del hosts
  familiarity.check_settings(config.familiarity.method, config.familiarity.shrinkage,
                             config.familiarity.val_pass_rate)
  if config.selection_window < 1:
    raise ValueError(f"config.selection_window must be 1 or more, not {config.selection_window}")
  if config.selection_metric not in SELECTION_METRICS:
    raise ValueError(f"unknown selection_metric {config.selection_metric!r}: use "
                     f"{', '.join(SELECTION_METRICS)}")


def _restored_run_state(run_checkpoints, phases) -> RunState:
  """The run state of the last complete checkpoint, or a fresh one at the first phase."""
  latest = run_checkpoints.latest_meta()
  if latest is None:
    return RunState(phase_index=phases[0].index)
  step, meta = latest
  run = RunState.from_json(meta["run"])
  logging.info("Resuming from step %d (phase %d, step %d of the phase)", step,
               run.phase_index + 1, run.phase_step)
  return run


def _load_best_into(model: model_lib.ArtClassifier, workdir: pathlib.Path, mesh) -> None:
  sharding = replicated(mesh)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          nnx.to_pure_dict(nnx.state(model)))
  state = nnx.state(model)
  nnx.replace_by_pure_dict(state, checkpoints.restore_best_state(workdir, abstract))
  nnx.update(model, state)


def _fit_familiarity(context: _Run, best_step: int) -> None:
  """Fits the familiarity scorer of the best weights (WORKDIR/familiarity.npz), once per best step."""
  path, config = context.workdir / familiarity.FAMILIARITY_FILE, context.config
  settings = json.dumps(config.familiarity.to_dict(), sort_keys=True)
  up_to_date = False
  if path.exists():
    saved = familiarity.Familiarity.load(path)
    up_to_date = (saved.best_step, saved.settings) == (best_step, settings)
  # Every host must take the same branch: the fit below runs on all of them together.
  if on_every_host(up_to_date):
    return
  _load_best_into(context.model, context.workdir, context.mesh)
  graphdef, state = nnx.split(context.model)
  state = put_replicated(state, context.mesh)

  @functools.partial(jax.jit, out_shardings=data_sharded(context.mesh))
  def forward(state, images):
    logits, pooled = nnx.merge(graphdef, state).logits_and_pooled(images)
    return {"logits": logits, "pooled": pooled}

  augment = transforms.from_config(config.data.augment)

  def outputs(source, split: str) -> dict:
    out = inference.forward_rows(
        lambda inputs: forward(state, inputs["image"]),
        transforms.eval_view_loader(source, augment), len(source), config.eval_batch_size // jax.process_count(), context.mesh,
        threads=config.data.read_threads, what=f"familiarity: {split} split")
    return {**out, "labels": balance.read_split_labels(source)}

  try:
    fitted = familiarity.fit(config.familiarity, outputs(context.train_source, "train"),
                             outputs(context.val_source, "val"))
  except ValueError as error:  # too little data: the model is kept, without familiarity
    logging.warning("No familiarity fitted: %s", error)
    return
  fitted.best_step, fitted.settings = best_step, settings
  if jax.process_index() == 0:
    fitted.save(path)
  logging.info("Familiarity (%s) fitted on the train split; %s", config.familiarity.method, path)


# ---------------------------------------------------------------------------
# One phase.


def _run_phase(context: _Run, plan: phase_data.PhasePlan, run: RunState) -> None:
  config, phase_config, model = context.config, plan.config, context.model
  steps_per_epoch = context.steps_per_epoch
  total_steps = phase_config.epochs * steps_per_epoch
  logging.info("Phase %d: train %s for %d epochs (%d steps of %d), lr %g%s", plan.index + 1,
               phase_config.trainable, phase_config.epochs, total_steps, config.batch_size,
               phase_config.learning_rate, ", on cached features" if plan.use_cache else "")
  schedule = optimizer_lib.learning_rate_schedule(
      phase_config.learning_rate, steps_per_epoch, phase_config.decay_rate,
      phase_config.decay_epochs, phase_config.warmup_steps)
  tx = optimizer_lib.make_optimizer(config.optimizer, schedule)
  is_trainable = optimizer_lib.trainable_filter(phase_config.trainable, model.num_stages)
  rng = jax.random.PRNGKey(config.seed + plan.index * config.phase_seed_stride)
  graphdef, state = steps.init_train_state(model, is_trainable, tx, rng,
                                           ema_decay=phase_config.ema_decay)
  state = put_replicated(state, context.mesh)
  data_position = {}
  if run.phase_step > 0:
    state, data_position = _restore_latest(context, state)
    # The frozen stages feed the feature cache: take them from the checkpoint too.
    nnx.update(model, steps.model_params(state), state.frozen, steps.model_batch_stats(state))
  data = phase_data.make_phase_data(config, plan, model, context.train_source,
                                    context.val_source, context.mesh,
                                    config.eval_batch_size // jax.process_count())
  data.restore(data_position)

  train_fn = steps.jit_train_step(
      context.mesh, graphdef=graphdef, tx=tx, schedule=schedule,
      task_weights=dict(config.loss.task_weights), class_weights=context.class_weights,
      label_smoothing=config.loss.label_smoothing, start_stage=plan.start_stage,
      frozen_below=plan.first_trainable, ema_decay=phase_config.ema_decay,
      ema_warmup=phase_config.ema_warmup, head_l2=config.loss.head_l2)
  eval_fn = steps.jit_eval_step(context.mesh, graphdef=graphdef, start_stage=plan.start_stage)
  log = _StepLog(context, plan, run, steps_per_epoch)
  for phase_step in range(run.phase_step, total_steps):
    state, step_metrics = train_fn(state, to_global(data.next_batch(phase_step), context.mesh))
    run.phase_step = phase_step + 1
    log.add(step_metrics)
    end_of_epoch = run.phase_step % steps_per_epoch == 0
    checkpoint_due = run.phase_step % config.checkpoint_every_steps == 0
    if end_of_epoch or checkpoint_due or run.phase_step % config.log_every_steps == 0:
      log.flush()
    if end_of_epoch:
      if _end_of_epoch(context, plan, run, state, eval_fn, data):
        break
    elif checkpoint_due:
      _save(context, plan, run, state, data)
  context.checkpoints.wait()
  nnx.update(model, steps.model_params(state), state.frozen, steps.model_batch_stats(state))


def _restore_latest(context: _Run, state) -> tuple[steps.TrainState, dict]:
  step = context.checkpoints.latest.latest_step()
  sharding = replicated(context.mesh)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          state)
  try:
    restored, _, data_position = context.checkpoints.restore_latest(step, abstract)
  except ValueError as error:
    raise ValueError(
        f"the checkpoint at step {step} in {context.workdir} does not fit this config: "
        f"{str(error).splitlines()[0]}") from None
  return restored, data_position


def _save(context: _Run, plan, run: RunState, state, data: phase_data.PhaseData) -> None:
  context.checkpoints.save(run.global_step, state, _checkpoint_meta(context, plan, run),
                           data.state())


def _checkpoint_meta(context: _Run, plan, run: RunState) -> dict:
  return {"run": run.to_json(), "model": context.config.model.to_dict(),
          "trainable": plan.config.trainable,
          "image_size": context.config.data.augment.image_size}


def _end_of_epoch(context: _Run, plan, run: RunState, state, eval_fn, data) -> bool:
  """Validation, model selection, the checkpoint; returns whether to stop the phase early."""
  config = context.config
  epoch = run.global_step // context.steps_per_epoch
  train_record = _epoch_train_record(run, epoch, plan.index)
  report = validate(eval_fn, state, data, context.mesh, config)
  val_record = {"epoch": epoch, "split": "val", "phase": plan.index + 1, **flat_report(report)}
  context.writer.write(train_record, run.global_step, prefix="epoch_train/")
  context.writer.write(val_record, run.global_step, prefix="epoch_val/")
  logging.info("epoch %d: train acc %s | val acc %s, mean %.4f, balanced %.4f, all three %.4f",
               epoch, _task_figures(train_record), _task_figures(val_record),
               report["mean_accuracy"], report["mean_balanced_accuracy"],
               report["all_three"]["accuracy"])
  # 'last' keeps the latest epoch: for a final fit whose epochs were chosen beforehand
  # on validation (the validation split may then be part of the training data).
  value = (float(run.global_step) if config.selection_metric == "last"
           else selection_value(report, config.selection_metric))
  run.val_history.append(value)
  # Selection on the mean of the last selection_window epochs: a small validation split
  # swings by points between epochs, and one lucky epoch should not pick the model.
  value = float(np.mean(run.val_history[-config.selection_window:]))
  if value > run.best_metric:
    run.best_metric, run.best_step, run.epochs_since_best = value, run.global_step, 0
    model = context.model
    nnx.update(model, steps.model_params(state), state.frozen, steps.model_batch_stats(state))
    context.checkpoints.save_best(run.global_step, nnx.to_pure_dict(nnx.state(model)),
                                  {**_checkpoint_meta(context, plan, run),
                                   "val_report": flat_report(report)})
  else:
    run.epochs_since_best += 1
  patience = plan.config.early_stopping_patience
  run.stopped_early = bool(patience) and run.epochs_since_best >= patience
  _save(context, plan, run, state, data)
  if run.stopped_early:
    logging.info("Early stopping: no better %s for %d epochs", config.selection_metric, patience)
  return run.stopped_early


def _epoch_train_record(run: RunState, epoch: int, phase_index: int) -> dict:
  """The epoch's mean training loss and accuracies, from the sums kept in the run state."""
  sums, run.epoch_sums = run.epoch_sums, {}
  record = {"epoch": epoch, "split": "train", "phase": phase_index + 1,
            "loss": sums.get("loss", 0.0) / max(sums.get("steps", 0.0), 1.0)}
  for task in labels.TASKS:
    record[f"{task}_accuracy"] = sums.get(f"{task}_correct", 0.0) / max(
        sums.get(f"{task}_known", 0.0), 1.0)
  return record


class _StepLog:
  """Collects step metrics on the device; fetches them only when it logs."""

  def __init__(self, context: _Run, plan, run: RunState, steps_per_epoch: int):
    self.context, self.plan, self.run, self.steps_per_epoch = context, plan, run, steps_per_epoch
    self.pending = []
    self.last_time, self.last_step = time.time(), run.phase_step

  def add(self, step_metrics) -> None:
    self.pending.append(step_metrics)

  def flush(self) -> None:
    fetched, self.pending = fetch_replicated(self.pending), []
    self._stop_if_diverged(fetched)
    sums = self.run.epoch_sums
    for m in fetched:
      sums["steps"] = sums.get("steps", 0.0) + 1.0
      for key, value in m.items():
        sums[key] = sums.get(key, 0.0) + float(value)
    now, done = time.time(), self.run.phase_step
    steps_per_sec = (done - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_time, self.last_step = now, done
    record = {k: float(np.mean([m[k] for m in fetched])) for k in
              ("loss", "culture_loss", "medium_loss", "period_loss", "grad_norm", "learning_rate")}
    record.update(phase=self.plan.index + 1, steps_per_sec=steps_per_sec,
                  images_per_sec=steps_per_sec * self.context.config.batch_size)
    self.context.writer.write(record, self.run.global_step, prefix="train/")
    logging.info("step %d (phase %d, epoch %.2f): loss %.4f, %.2f steps/s, %.1f images/s, lr %.3g",
                 self.run.global_step, self.plan.index + 1, done / self.steps_per_epoch,
                 record["loss"], steps_per_sec, record["images_per_sec"], record["learning_rate"])

  def _stop_if_diverged(self, fetched) -> None:
    bad = next((i for i, m in enumerate(fetched) if int(m["nonfinite"])), None)
    if bad is None:
      return
    last = self.context.checkpoints.latest.latest_step()
    raise TrainingDiverged(
        f"the loss became NaN or infinite at step {self.run.global_step - len(fetched) + bad + 1} "
        f"(learning rate {float(fetched[bad]['learning_rate']):.3g}); training stopped. "
        f"The last good checkpoint ({'none yet' if last is None else f'step {last}'}) is kept in "
        f"{self.context.workdir}. Lower the learning rate or set config.optimizer.clip_norm.")


# ---------------------------------------------------------------------------
# Validation.


def validate(eval_fn, state, data: phase_data.PhaseData, mesh, config) -> dict:
  """The `artclf.eval.metrics` report of the model in `state` on the validation rows."""
  logits = inference.forward_rows(
      lambda inputs: eval_fn(state, inputs), data.load_val_rows, data.num_val,
      config.eval_batch_size // jax.process_count(), mesh, threads=config.data.read_threads)
  probs = {task: calibration.softmax(value) for task, value in logits.items()}
  return metrics.evaluate_predictions(data.val_labels, probs)


def selection_value(report: dict, metric: str) -> float:
  value = report["all_three"]["accuracy"] if metric == "all_three_accuracy" else report[metric]
  return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value


def flat_report(report: dict) -> dict:
  flat = {"mean_accuracy": report["mean_accuracy"],
          "mean_balanced_accuracy": report["mean_balanced_accuracy"],
          "all_three_accuracy": report["all_three"]["accuracy"]}
  for task in labels.TASKS:
    flat[f"{task}_accuracy"] = report["tasks"][task]["accuracy"]
    flat[f"{task}_balanced_accuracy"] = report["tasks"][task]["balanced_accuracy"]
  return flat


def _task_figures(record: dict) -> str:
  return "/".join(f"{record[f'{task}_accuracy']:.3f}" for task in labels.TASKS)
