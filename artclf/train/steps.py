"""The jitted train and eval steps, the train state, and how they are sharded.

Data parallelism over `artclf.mesh`: batches are split along the mesh's 'data' axis;
parameters, optimiser state and RNG are replicated, and XLA inserts the gradient
all-reduce. The same code runs on one CPU, on 8 simulated CPU devices and on several
hosts (each host feeds its own block of the batch).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from artclf.mesh import data_sharded, replicated
from artclf.run import forward
from artclf.scheme import UNKNOWN
from artclf.train import losses

@flax.struct.dataclass
class TrainState:
  """Everything a step changes. The model's structure (graphdef) lives outside, static."""
  step: jax.Array
  trainable: nnx.State    # parameters this phase updates
  frozen: nnx.State       # parameters this phase keeps fixed
  batch_stats: nnx.State  # BatchNorm moving statistics
  opt_state: Any
  rng: jax.Array          # raw uint32 key; dropout keys are folded from it per step
  # Exponential moving averages of `trainable` and of `batch_stats` (None when
  # config.phaseN.ema_decay is 0). When kept, they are what evaluation sees and what
  # becomes the model: an average over the last few hundred steps is less noisy than
  # the weights of any single step. The BatchNorm statistics are averaged too, so that
  # the averaged weights are never paired with statistics of other weights (they only
  # move when config.model.freeze_bn_stats is off).
  ema: nnx.State | None = None
  ema_batch_stats: nnx.State | None = None


def split_model(model: nnx.Module, is_trainable) -> tuple[nnx.GraphDef, nnx.State, nnx.State,
                                                          nnx.State]:
  """(graphdef, trainable params, frozen params, batch stats)."""
  return nnx.split(model, nnx.All(nnx.Param, is_trainable), nnx.Param, nnx.BatchStat)


def init_train_state(model: nnx.Module, is_trainable, tx: optax.GradientTransformation,
                     rng: jax.Array, step: int = 0,
                     ema_decay: float = 0.0) -> tuple[nnx.GraphDef, TrainState]:
  graphdef, trainable, frozen, batch_stats = split_model(model, is_trainable)
  # Copies, not the same buffers: the train step donates its state.
  copy = lambda tree: jax.tree.map(jnp.copy, tree) if ema_decay > 0 else None
  state = TrainState(step=jnp.asarray(step, jnp.int32), trainable=trainable, frozen=frozen,
                     batch_stats=batch_stats, opt_state=tx.init(trainable), rng=rng,
                     ema=copy(trainable), ema_batch_stats=copy(batch_stats))
  return graphdef, state


def model_params(state: TrainState) -> nnx.State:
  """The trainable parameters the model is evaluated and saved with: the EMA if kept."""
  return state.trainable if state.ema is None else state.ema


def model_batch_stats(state: TrainState) -> nnx.State:
  """The BatchNorm statistics that go with `model_params`."""
  return state.batch_stats if state.ema_batch_stats is None else state.ema_batch_stats


def merge_model(graphdef: nnx.GraphDef, state: TrainState) -> nnx.Module:
  return nnx.merge(graphdef, model_params(state), state.frozen, model_batch_stats(state))


def update_ema(ema: nnx.State, params: nnx.State, step: jax.Array, decay: float,
               warmup: float) -> nnx.State:
  """ema <- d * ema + (1 - d) * params, with d = min(decay, (1 + step) / (warmup + step)).

  The warm-up of d keeps the first steps from being dominated by the initial weights
  (as tf.train.ExponentialMovingAverage with num_updates, whose warm-up is 10).
  """
  d = jnp.minimum(decay, (1.0 + step) / (warmup + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def _training_forward(model, batch, start_stage: int, dropout_key, frozen_below: int = 0):
  """Training logits (dropout on) from images (start_stage 0) or from cached features."""
  if start_stage == 0:
    return model(batch["image"], train=True, dropout_key=dropout_key, frozen_below=frozen_below)
  return model.forward_from(batch["features"], start_stage, train=True, dropout_key=dropout_key)


def _accuracy_counts(logits, batch) -> dict[str, jax.Array]:
  counts = {}
  for task in logits:
    known = batch[task] != UNKNOWN
    correct = (jnp.argmax(logits[task], -1) == batch[task]) & known
    counts[f"{task}_correct"] = jnp.sum(correct)
    counts[f"{task}_known"] = jnp.sum(known)
  return counts


def train_step(state: TrainState, batch: Mapping[str, Any], *, graphdef: nnx.GraphDef,
               tx: optax.GradientTransformation, schedule: optax.Schedule,
               task_weights: Mapping[str, float],
               class_weights: Mapping[str, jax.Array] | None,
               label_smoothing: float, start_stage: int, frozen_below: int = 0,
               ema_decay: float = 0.0, ema_warmup: float = 10.0,
               head_l2: float = 0.0,
               ordinal_weights: Mapping[str, float] | None = None) -> tuple[TrainState, dict]:
  """One optimiser step on one (global) batch: state in, state and metrics out.

  `start_stage` is where the network starts (0: from images; above: from cached
  features); stages below `frozen_below` are frozen, BatchNorm statistics included.
  A non-finite loss leaves the state unchanged and is reported in metrics['nonfinite'],
  so a checkpoint never holds NaN parameters. `head_l2` adds head_l2 x the squared norm
  of the SE block's and the heads' kernels to the loss (a logistic regression's penalty);
  `ordinal_weights` weigh the ordered tasks' earth mover's distance (losses.total_loss).
  """
  dropout_key = jax.random.fold_in(state.rng, state.step)

  def loss_fn(trainable):
    # copy=True: fresh variables in this trace, so that BatchNorm can update its
    # statistics here when they are trained (config.model.freeze_bn_stats off).
    model = nnx.merge(graphdef, trainable, state.frozen, state.batch_stats, copy=True)
    logits = _training_forward(model, batch, start_stage, dropout_key, frozen_below)
    loss, per_task = losses.total_loss(logits, batch, task_weights, class_weights,
                                       label_smoothing, ordinal_weights)
    if head_l2:
      loss = loss + head_l2 * losses.head_kernel_norm(trainable)
    return loss, (per_task, logits, nnx.state(model, nnx.BatchStat))

  (loss, (per_task, logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.trainable)
  updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
  trainable = optax.apply_updates(state.trainable, updates)

  # Finite loss and gradients can still give non-finite updates (an absurd learning rate).
  finite = (jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads)) &
            jnp.isfinite(optax.global_norm(updates)))
  keep_if_finite = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  trainable = keep_if_finite(trainable, state.trainable)
  batch_stats = keep_if_finite(batch_stats, state.batch_stats)
  averaged = lambda ema, live: None if ema is None else keep_if_finite(
      update_ema(ema, live, state.step, ema_decay, ema_warmup), ema)
  new_state = state.replace(
      step=state.step + 1,
      trainable=trainable,
      batch_stats=batch_stats,
      opt_state=keep_if_finite(opt_state, state.opt_state),
      ema=averaged(state.ema, trainable),
      ema_batch_stats=averaged(state.ema_batch_stats, batch_stats))
  metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
             "learning_rate": schedule(state.step), "nonfinite": (~finite).astype(jnp.int32),
             **per_task, **_accuracy_counts(logits, batch)}
  return new_state, metrics


def eval_step(state: TrainState, batch: Mapping[str, Any], *, graphdef: nnx.GraphDef,
              start_stage: int) -> dict[str, Any]:
  """The one inference forward (`artclf.run.forward.outputs`) of the model in `state`:
  {'logits': {task: ...}, 'pooled': ...} for one batch (no state change)."""
  return forward.outputs(merge_model(graphdef, state), batch, start_stage)


def jit_train_step(mesh: Mesh, **static) -> Callable:
  """train_step under jit, batch sharded over 'data', everything else replicated."""
  return jax.jit(
      functools.partial(train_step, **static),
      in_shardings=(replicated(mesh), data_sharded(mesh)),
      out_shardings=(replicated(mesh), replicated(mesh)),
      donate_argnums=0)


def jit_eval_step(mesh: Mesh, **static) -> Callable:
  return jax.jit(
      functools.partial(eval_step, **static),
      in_shardings=(replicated(mesh), data_sharded(mesh)),
      out_shardings=data_sharded(mesh))
