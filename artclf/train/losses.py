"""The training loss: masked softmax cross-entropy per head, weighted over heads.

An unknown label (`artclf.scheme.UNKNOWN`) contributes nothing to its head: the head's loss is
the (class-weighted) mean over the rows whose label is known, so a batch with unknown
rows gives the same loss as the batch without them.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from artclf.scheme import UNKNOWN


def masked_cross_entropy(logits: jax.Array, targets: jax.Array,
                         class_weights: jax.Array | None = None,
                         label_smoothing: float = 0.0,
                         example_weights: jax.Array | None = None) -> jax.Array:
  """Weighted mean softmax cross-entropy over the rows with a known target.

  logits [B, C]; targets [B] int (UNKNOWN = -1); class_weights [C] or None. Rows are
  weighted by their class's weight and the sum is divided by the sum of those weights
  (as PyTorch's weighted cross-entropy does); example_weights [B] (or None) multiply the
  rows' weights (an adapted run's own photos, `artclf.adapt`). A batch without known
  targets gives 0.
  """
  safe_targets, row_weight = _known_rows(targets, class_weights, example_weights)
  one_hot = jax.nn.one_hot(safe_targets, logits.shape[-1], dtype=jnp.float32)
  if label_smoothing:
    one_hot = optax.smooth_labels(one_hot, label_smoothing)
  per_row = optax.softmax_cross_entropy(logits.astype(jnp.float32), one_hot)
  return _weighted_mean(per_row, row_weight)


def masked_ordinal_loss(logits: jax.Array, targets: jax.Array,
                        class_weights: jax.Array | None = None,
                        example_weights: jax.Array | None = None) -> jax.Array:
  """Squared earth mover's distance between the predicted and true class distributions of
  an ordered task (classes in order, such as early < middle < late), weighted and masked
  as `masked_cross_entropy`: calling 'late' 'early' costs more than calling it 'middle'."""
  safe_targets, row_weight = _known_rows(targets, class_weights, example_weights)
  cumulative = jnp.cumsum(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), axis=-1)[:, :-1]
  true_cumulative = (safe_targets[:, None] <= jnp.arange(logits.shape[-1] - 1)).astype(jnp.float32)
  per_row = jnp.sum(jnp.square(cumulative - true_cumulative), axis=-1)
  return _weighted_mean(per_row, row_weight)


def _known_rows(targets: jax.Array, class_weights: jax.Array | None,
                example_weights: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """(targets with UNKNOWN as 0, each row's weight: 0 if unknown, else its class's weight
  times its example weight)."""
  known = targets != UNKNOWN
  safe_targets = jnp.where(known, targets, 0)
  row_weight = known.astype(jnp.float32)
  if class_weights is not None:
    row_weight = row_weight * jnp.asarray(class_weights, jnp.float32)[safe_targets]
  if example_weights is not None:
    row_weight = row_weight * example_weights.astype(jnp.float32)
  return safe_targets, row_weight


def _weighted_mean(per_row: jax.Array, row_weight: jax.Array) -> jax.Array:
  return jnp.sum(per_row * row_weight) / jnp.maximum(jnp.sum(row_weight), 1e-12)


def total_loss(logits: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
               task_weights: Mapping[str, float],
               class_weights: Mapping[str, jax.Array] | None = None,
               label_smoothing: float = 0.0,
               ordinal_weights: Mapping[str, float] | None = None,
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """sum over tasks (task_weights' keys) of task_weight * head loss; returns (total,
  {'<task>_loss': ...}). A batch's 'example_weight' [B], if given, weighs its rows. A task
  in `ordinal_weights` adds that weight x its `masked_ordinal_loss` to its head loss."""
  per_task = {}
  total = jnp.zeros((), jnp.float32)
  for task in task_weights:
    weights = None if class_weights is None else class_weights[task]
    loss = masked_cross_entropy(logits[task], batch[task], weights, label_smoothing,
                                batch.get("example_weight"))
    if ordinal_weights and ordinal_weights.get(task):
      loss = loss + ordinal_weights[task] * masked_ordinal_loss(
          logits[task], batch[task], weights, batch.get("example_weight"))
    per_task[f"{task}_loss"] = loss
    total = total + task_weights[task] * loss
  return total, per_task


def head_kernel_norm(params) -> jax.Array:
  """The squared norm of the kernels above the trunk, the SE block's and the task heads'
  (the L2 penalty of config.loss.head_l2)."""
  total = jnp.float32(0.0)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = [str(getattr(key, "key", getattr(key, "name", key))) for key in path]
    if "head" in names and "kernel" in names:
      total = total + jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total
