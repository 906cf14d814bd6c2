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

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import inference
from artclf import scheme as scheme_lib
from artclf.data import balance, dataset, feature_cache, transforms
from artclf.eval import calibration, familiarity, metrics
from artclf.mesh import (fetch_replicated, make_mesh, on_every_host, put_replicated, replicated,
                         to_global)
from artclf.models import classifier as model_lib
from artclf.models import trunks
from artclf.run import checkpoint as run_checkpoint
from artclf.run import finalize, forward, neighbours
from artclf.run import trained as trained_lib
from artclf.train import checkpoints, metric_writer, phase_data, standardize, steps
from artclf.train import timings as timings_lib
from artclf.train import optimizer as optimizer_lib
from artclf.train import workdir as workdir_lib
from artclf.train.run_state import RunState

# 'all_three_accuracy' is the name runs saved before schemes used for 'all_tasks_accuracy'.
SELECTION_METRICS = ("mean_accuracy", "mean_balanced_accuracy", "all_tasks_accuracy",
                     "all_three_accuracy", "last")


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint was kept."""


def build_model(config, scheme: scheme_lib.LabelScheme, seed: int = 0,
                load_weights: bool = True,
                imagenet_state: concurrent.futures.Future | None = None) -> model_lib.ArtClassifier:
  """The run's network, with the trunk's ImageNet weights if config.model.pretrained (from
  `imagenet_state`, read_imagenet_weights' future, if given)."""
  pretrained = load_weights and config.model.pretrained
  model = trained_lib.build_model(config, scheme, seed, random_trunk=not pretrained)
  if pretrained:
    trunks.load_imagenet_weights(model.trunk_modules, config.model.trunk,
                                 config.weights_dir or None, config.weights_tarball or None,
                                 imagenet_state.result() if imagenet_state else None)
  return model


def read_imagenet_weights(config, pool: concurrent.futures.Executor) -> concurrent.futures.Future | None:
  """The trunk's ImageNet weights, read in `pool` (while the dataset is built, say), or None
  if the run does not use them. A WeightsError comes from the future's result()."""
  if not config.model.pretrained:
    return None
  return pool.submit(trunks.imagenet_trunk_state, config.model.trunk, config.weights_dir or None,
                     config.weights_tarball or None)


def class_weights_from(train: dataset.LabelledSplit, scheme: scheme_lib.LabelScheme,
                       loss_config) -> dict[str, np.ndarray] | None:
  if not loss_config.class_weights:
    return None
  balance.check_every_task_labelled(train.labels, scheme, train.name)
  counts = balance.class_counts(train.labels, scheme)
  return {task: balance.class_weights(counts[task], power=loss_config.class_weight_power)
          for task in scheme.tasks}


def task_weights_from(scheme: scheme_lib.LabelScheme, loss_config) -> dict[str, float]:
  """config.loss.task_weights for each task; a task it does not list weighs 1."""
  given = dict(loss_config.task_weights or {})
  unknown = sorted(set(given) - set(scheme.tasks))
  if unknown:
    raise ValueError(f"config.loss.task_weights names {', '.join(unknown)}, which the run's "
                     f"tasks ({','.join(scheme.tasks)}) do not have")
  return {task: float(given.get(task, 1.0)) for task in scheme.tasks}


def ordinal_weights_from(scheme: scheme_lib.LabelScheme, loss_config) -> dict[str, float]:
  """config.loss.ordinal_weights: {ordered task: weight}; a task the run lacks is refused."""
  given = {task: float(w) for task, w in dict(loss_config.get("ordinal_weights") or {}).items()}
  unknown = sorted(set(given) - set(scheme.tasks))
  if unknown:
    raise ValueError(f"config.loss.ordinal_weights names {', '.join(unknown)}, which the run's "
                     f"tasks ({','.join(scheme.tasks)}) do not have")
  return given


@dataclasses.dataclass
class _Run:
  """What every phase of one run shares."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  mesh: jax.sharding.Mesh
  checkpoints: checkpoints.RunCheckpoints
  writer: metric_writer.MetricWriter
  model: model_lib.ArtClassifier
  scheme: scheme_lib.LabelScheme
  train: dataset.LabelledSplit
  val: dataset.LabelledSplit
  class_weights: dict | None
  data_digest: str  # of the train and val records: a resume must train on the same data
  timings: timings_lib.Timings
  frozen_digest: str = ""  # of the phase's frozen parameters, which checkpoints leave out
  # (global step, state, meta) of a best model not yet written: it is written with the next
  # checkpoint, so a resume from that checkpoint never misses it.
  pending_best: tuple | None = None

  @property
  def steps_per_epoch(self) -> int:
    return len(self.train) // self.config.batch_size


# ---------------------------------------------------------------------------
# The run, top to bottom.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) the run in `workdir`; returns {best_step, selection metric}."""
  workdir = pathlib.Path(workdir).resolve()
  config = workdir_lib.absolute_paths(config)
  is_main = jax.process_index() == 0
  timings = timings_lib.Timings()
  with workdir_lib.locked(workdir) if is_main else contextlib.nullcontext():
    # Everything that can refuse the run comes before the first write to the workdir.
    mesh = make_mesh()
    _check_settings(config, mesh)
    # The ImageNet weights are read in a thread while the dataset is built and opened.
    weights_reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="weights")
    imagenet_state = read_imagenet_weights(config, weights_reader)
    weights_reader.shutdown(wait=False)
    with timings.part("dataset"):
      data_dir = dataset.ensure_built(config.data)
      config, scheme, train, val = open_data(config, data_dir)
    for change in workdir_lib.check_resume(workdir, config):
      logging.info("Resuming with a changed setting: %s", change)
    logging.info("Data: %d train, %d val examples from %s; %d device(s), %d host(s)",
                 len(train), len(val), data_dir, mesh.devices.size, jax.process_count())
    logging.info("Tasks: %s", "; ".join(f"{t} ({', '.join(c)})" for t, c in scheme.classes.items()))
    class_weights = class_weights_from(train, scheme, config.loss)
    task_weights_from(scheme, config.loss)  # refuses a weight for a task the run lacks
    ordinal_weights_from(scheme, config.loss)
    with timings.part("weights"):  # what is left of reading them, and building the model
      model = build_model(config, scheme, config.seed, imagenet_state=imagenet_state)
    phases = phase_data.plan_phases(config, model.num_stages, jax.default_backend(),
                                    model.pooled_stage)
    data_digest = _data_digest(train, val)
    run_checkpoints = checkpoints.RunCheckpoints(workdir, keep=config.keep_checkpoints)
    run = _restored_run_state(run_checkpoints, phases, data_digest, workdir)

    if is_main:
      workdir_lib.save_config(workdir, config)
    writer = metric_writer.MetricWriter(workdir, enabled=is_main, resume_step=run.global_step)
    if class_weights:
      logging.info("Class weights: %s",
                   {t: np.round(w, 2).tolist() for t, w in class_weights.items()})
    context = _Run(config, workdir, mesh, run_checkpoints, writer, model, scheme, train, val,
                   class_weights, data_digest, timings)

    data = None  # the last phase's data: its cached features serve the final fits
    for plan in phases:
      if plan.index < run.phase_index:
        continue
      if plan.index > run.phase_index:
        # A new phase starts from the best weights so far.
        trained_lib.restore_best_into(model, workdir, mesh)
        run.start_phase(plan.index)
      elif run.stopped_early or run.phase_step >= plan.config.epochs * context.steps_per_epoch:
        continue  # this phase had finished before the restart
      elif run.phase_step > 0 and run.best_step is not None:
        # A resumed phase: its frozen part is the best weights' (checkpoints leave it out).
        trained_lib.restore_best_into(model, workdir, mesh)
      with timings.part("heads"):  # caching, inside it, counts as its own part
        data = _run_phase(context, plan, run)

    run_checkpoints.wait()
    with timings.part("calibration+familiarity"):
      _finalize(context, run.best_step, data)
    run_checkpoints.close()
    writer.close()
    logging.info("Time: %s", timings.line())
    summary = {"best_step": run.best_step, config.selection_metric: run.best_metric,
               "seconds": timings.summary()}
    if is_main:
      (workdir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def open_data(config, data_dir) -> tuple[ml_collections.ConfigDict, scheme_lib.LabelScheme,
                                          dataset.LabelledSplit, dataset.LabelledSplit]:
  """The run's scheme, resolved from the config and the training labels, the config with
  it written in (what config.json keeps), and the labelled train and val splits.

  Refuses, before any compute, a label outside the scheme, a class or task without a
  single training label, and a training split smaller than one batch.
  """
  where = dataset.labels_file(data_dir)
  train_source, val_source = (
      dataset.open_split(data_dir, split, config.data.max_examples, config.data.exclude)
      for split in (config.data.train_split, config.data.val_split))
  try:
    tasks = scheme_lib.configured_tasks(config)
    scheme = scheme_lib.resolve(config, dataset.columns_of(train_source, tasks))
  except scheme_lib.SchemeError as error:
    raise ValueError(f"{where}: {error}") from None
  except ValueError as error:  # a column config.tasks names is not in labels.csv
    raise ValueError(f"{where}: {error}; config.tasks names the label columns "
                     f"({config.get('tasks', '')})") from None
  config = ml_collections.ConfigDict(config.to_dict())
  resolved = scheme.config_values()
  config.tasks, config.classes = resolved["tasks"], ml_collections.ConfigDict(resolved["classes"])
  train = dataset.LabelledSplit(config.data.train_split, train_source,
                                dataset.read_labels(train_source, scheme, where))
  val = dataset.LabelledSplit(config.data.val_split, val_source,
                              dataset.read_labels(val_source, scheme, where))
  _check_training_labels(train, scheme, where)
  if len(train) < config.batch_size:
    raise ValueError(f"{len(train)} training examples are fewer than one batch of "
                     f"{config.batch_size} (config.batch_size)")
  return config, scheme, train, val


def _check_training_labels(train: dataset.LabelledSplit, scheme: scheme_lib.LabelScheme,
                           where: str) -> None:
  """Every task has labels in the training split, and every class of the scheme a few."""
  for task in scheme.tasks:
    if not (train.labels[task] >= 0).any():
      raise ValueError(f"{where}: no image of the {train.name} split has a {task} label; "
                       f"label some, or leave {task} out of config.tasks")
  missing = balance.missing_classes(train.labels, scheme)
  if missing:
    raise ValueError(f"{where}: no image of the {train.name} split is labelled "
                     f"{', '.join(missing)}; label some, or leave the class out of "
                     "config.classes (empty: the classes the training labels have)")


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


def _data_digest(train: dataset.LabelledSplit, val: dataset.LabelledSplit) -> str:
  """A digest of the images and labels a run trains and selects on."""
  return hashlib.sha256("".join(
      feature_cache.source_digest(split.source, split.labels) for split in (train, val)
  ).encode()).hexdigest()


def _restored_run_state(run_checkpoints, phases, data_digest: str,
                        workdir: pathlib.Path) -> RunState:
  """The run state of the last complete checkpoint, or a fresh one at the first phase.

  Refuses to resume on other data (labels.csv edited, images replaced): one model would
  then be trained on two datasets.
  """
  latest = run_checkpoints.latest_meta()
  if latest is None:
    return RunState(phase_index=phases[0].index)
  step, meta = latest
  if meta.get("data_digest", data_digest) != data_digest:
    raise workdir_lib.WorkdirError(
        f"the training data changed since the run in {workdir} started (labels.csv edited or "
        "images replaced): resuming would train one model on two datasets. Start a new "
        "--workdir for the new data, or restore the data the run began with; nothing in it "
        "was changed")
  run = RunState.from_json(meta["run"])
  logging.info("Resuming from step %d (phase %d, step %d of the phase)", step,
               run.phase_index + 1, run.phase_step)
  return run


def _finalize(context: _Run, best_step: int, data: phase_data.PhaseData | None) -> None:
  """Fits the best weights' temperatures and familiarity scorer (`artclf.run.finalize`),
  once per best step and settings; from the last phase's cached features where `data`
  holds a split's evaluation views (the stages it cached were frozen since the best
  weights' phase began), else from the images."""
  workdir, config = context.workdir, context.config
  # Every host must take the same branch: the passes below run on all of them together.
  if on_every_host(finalize.up_to_date(workdir, config, best_step)):
    return
  trained_lib.restore_best_into(context.model, workdir, context.mesh)
  graphdef, state = nnx.split(context.model)
  state = put_replicated(state, context.mesh)
  augment = transforms.from_config(config.data.augment)

  def outputs(split: dataset.LabelledSplit) -> dict:
    cached = data.eval_view_rows(split.name) if data is not None else None
    start_stage, load_rows = cached or (0, transforms.eval_view_loader(split.source, augment))
    apply = forward.jit_outputs(graphdef, context.mesh, start_stage)
    out = inference.forward_rows(
        lambda inputs: apply(state, inputs), load_rows,
        len(split), config.eval_batch_size // jax.process_count(), context.mesh,
        threads=config.data.read_threads, what=f"calibration and familiarity: {split.name} split")
    return {**out, "labels": split.labels}

  train = outputs(context.train) if config.familiarity.enabled else None
  finalize.fit_and_save(workdir, config, context.scheme, best_step, train, outputs(context.val),
                        write=jax.process_index() == 0)
  # From the same pass; without it (no familiarity) the index is built on first use.
  if neighbours.enabled(config) and train is not None and jax.process_index() == 0:
    neighbours.save(workdir, train["pooled"], context.train.source, context.train.labels,
                    context.scheme, neighbours.thumbnail_size_of(config))


# ---------------------------------------------------------------------------
# One phase.


def _run_phase(context: _Run, plan: phase_data.PhasePlan, run: RunState) -> phase_data.PhaseData:
  """Trains one phase; returns its data."""
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
  context.frozen_digest = run_checkpoint.params_digest(nnx.to_pure_dict(state.frozen))
  if run.phase_step > 0:
    state, data_position = _restore_latest(context, state)
    nnx.update(model, steps.model_params(state), state.frozen, steps.model_batch_stats(state))
  with context.timings.part("caching"):
    data = phase_data.make_phase_data(config, plan, model, context.scheme, context.train,
                                      context.val, context.mesh,
                                      config.eval_batch_size // jax.process_count())
  data.restore(data_position)
  if config.model.get("standardize") and plan.index == 0 and run.phase_step == 0:
    standardize.set_statistics(model, data, config, context.train, context.mesh,
                               config.eval_batch_size // jax.process_count())
    stats = steps.split_model(model, is_trainable)[3]
    ema_stats = None if state.ema_batch_stats is None else jax.tree.map(jnp.copy, stats)
    state = put_replicated(state.replace(batch_stats=stats, ema_batch_stats=ema_stats),
                           context.mesh)

  train_fn = steps.jit_train_step(
      context.mesh, graphdef=graphdef, tx=tx, schedule=schedule,
      task_weights=task_weights_from(context.scheme, config.loss),
      class_weights=context.class_weights,
      label_smoothing=config.loss.label_smoothing, start_stage=plan.start_stage,
      frozen_below=plan.first_trainable, ema_decay=phase_config.ema_decay,
      ema_warmup=phase_config.ema_warmup, head_l2=config.loss.head_l2,
      ordinal_weights=ordinal_weights_from(context.scheme, config.loss))
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
  return data


def _restore_latest(context: _Run, state) -> tuple[steps.TrainState, dict]:
  """The last checkpoint's state; its frozen parameters, which it leaves out (checkpoints
  saved before that hold them), are the model's: the ImageNet weights, or the best
  weights the phase began from, checked against the digest the checkpoint keeps."""
  step = context.checkpoints.latest.latest_step()
  frozen_digest = context.checkpoints.latest_meta()[1].get("frozen_digest")
  if frozen_digest is not None and frozen_digest != context.frozen_digest:
    raise ValueError(f"the checkpoint at step {step} in {context.workdir} was trained on other "
                     "frozen weights than the model's (ImageNet weights or best checkpoint "
                     "changed); start a new --workdir")
  saved = state.replace(frozen={}) if frozen_digest is not None else state
  sharding = replicated(context.mesh)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          saved)
  try:
    restored, _, data_position = context.checkpoints.restore_latest(step, abstract)
  except ValueError as error:
    raise ValueError(
        f"the checkpoint at step {step} in {context.workdir} does not fit this config: "
        f"{str(error).splitlines()[0]}") from None
  return restored.replace(frozen=state.frozen), data_position


def _save(context: _Run, plan, run: RunState, state, data: phase_data.PhaseData) -> None:
  if context.pending_best is not None:
    context.checkpoints.save_best(*context.pending_best)
    context.pending_best = None
  # Without the frozen parameters (the whole trunk in the main job: ~100 MB each epoch).
  context.checkpoints.save(run.global_step, state.replace(frozen={}),
                           {**_checkpoint_meta(context, plan, run),
                            "frozen_digest": context.frozen_digest}, data.state())


def _checkpoint_meta(context: _Run, plan, run: RunState) -> dict:
  return {"run": run.to_json(), "model": context.config.model.to_dict(),
          "trainable": plan.config.trainable,
          "image_size": context.config.data.augment.image_size,
          "scheme": context.scheme.to_json(), "config": context.config.to_dict(),
          "data_digest": context.data_digest}


def _end_of_epoch(context: _Run, plan, run: RunState, state, eval_fn, data) -> bool:
  """Validation, model selection, the checkpoint; returns whether to stop the phase early."""
  config = context.config
  epoch = run.global_step // context.steps_per_epoch
  train_record = _epoch_train_record(run, epoch, plan.index, context.scheme)
  report = validate(eval_fn, state, data, context.mesh, config, context.scheme)
  val_record = {"epoch": epoch, "split": "val", "phase": plan.index + 1, **flat_report(report)}
  context.writer.write(train_record, run.global_step, prefix="epoch_train/")
  context.writer.write(val_record, run.global_step, prefix="epoch_val/")
  logging.info("epoch %d: train acc %s | val acc %s, mean %.4f, balanced %.4f, %s %.4f",
               epoch, _task_figures(train_record, context.scheme),
               _task_figures(val_record, context.scheme), report["mean_accuracy"],
               report["mean_balanced_accuracy"], report["all_tasks"]["name"],
               report["all_tasks"]["accuracy"])
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
    # A copy: the train step donates the state's buffers, and the best is written later.
    best_state = jax.tree.map(jnp.copy, nnx.to_pure_dict(nnx.state(model)))
    context.pending_best = (run.global_step, best_state, {
        **_checkpoint_meta(context, plan, run), "val_report": flat_report(report),
        "params_digest": run_checkpoint.params_digest(best_state)})
  else:
    run.epochs_since_best += 1
  patience = plan.config.early_stopping_patience
  run.stopped_early = bool(patience) and run.epochs_since_best >= patience
  phase_epoch = run.phase_step // context.steps_per_epoch
  if (run.stopped_early or phase_epoch % config.checkpoint_every_epochs == 0
      or phase_epoch == plan.config.epochs):
    _save(context, plan, run, state, data)
  if run.stopped_early:
    logging.info("Early stopping: no better %s for %d epochs", config.selection_metric, patience)
  return run.stopped_early


def _epoch_train_record(run: RunState, epoch: int, phase_index: int,
                        scheme: scheme_lib.LabelScheme) -> dict:
  """The epoch's mean training loss and accuracies, from the sums kept in the run state."""
  sums, run.epoch_sums = run.epoch_sums, {}
  record = {"epoch": epoch, "split": "train", "phase": phase_index + 1,
            "loss": sums.get("loss", 0.0) / max(sums.get("steps", 0.0), 1.0)}
  for task in scheme.tasks:
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
    keys = ["loss"] + [f"{t}_loss" for t in self.context.scheme.tasks] + ["grad_norm",
                                                                             "learning_rate"]
    record = {k: float(np.mean([m[k] for m in fetched])) for k in keys}
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


def validate(eval_fn, state, data: phase_data.PhaseData, mesh, config,
             scheme: scheme_lib.LabelScheme) -> dict:
  """The `artclf.eval.metrics` report of the model in `state` on the validation rows."""
  outputs = inference.forward_rows(
      lambda inputs: eval_fn(state, inputs), data.load_val_rows, data.num_val,
      config.eval_batch_size // jax.process_count(), mesh, threads=config.data.read_threads)
  probs = {task: calibration.softmax(value) for task, value in outputs["logits"].items()}
  return metrics.evaluate_predictions(data.val_labels, probs, scheme)


def selection_value(report: dict, metric: str) -> float:
  if metric in ("all_tasks_accuracy", "all_three_accuracy"):
    value = report["all_tasks"]["accuracy"]
  else:
    value = report[metric]
  return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value


def flat_report(report: dict) -> dict:
  """The headline figures of a metrics report, one level deep (for logs and checkpoints)."""
  flat = {"mean_accuracy": report["mean_accuracy"],
          "mean_balanced_accuracy": report["mean_balanced_accuracy"],
          "all_tasks_accuracy": report["all_tasks"]["accuracy"]}
  for task, figures in report["tasks"].items():
    flat[f"{task}_accuracy"] = figures["accuracy"]
    flat[f"{task}_balanced_accuracy"] = figures["balanced_accuracy"]
  return flat


def _task_figures(record: dict, scheme: scheme_lib.LabelScheme) -> str:
  return "/".join(f"{record[f'{task}_accuracy']:.3f}" for task in scheme.tasks)
