"""Training the upper part of a model on frozen-stage features, rows weighted (adapt's loop).

The same train step as training (`artclf.train.steps`), fed from features held in
memory: the base run's training split mixed with a collection's photographs, each row
with its weight in the loss. A pass of a few thousand cached rows takes seconds, so the
loop keeps no checkpoints of its own: an interrupted adapt runs it again.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import inference
from artclf import scheme as scheme_lib
from artclf.data import dataset
from artclf.mesh import fetch_replicated, put_replicated, to_global
from artclf.models import classifier as model_lib
from artclf.run import forward
from artclf.train import optimizer as optimizer_lib
from artclf.train import steps, trainer


@dataclasses.dataclass
class Rows:
  """Rows of frozen-stage features: {net: [N, ...]}, labels {task: [N]}, weights [N]."""
  features: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  weights: np.ndarray

  def __len__(self) -> int:
    return len(self.weights)

  def take(self, index) -> "Rows":
    index = np.asarray(index, np.int64)
    return Rows({k: v[index] for k, v in self.features.items()},
                {k: v[index] for k, v in self.labels.items()}, self.weights[index])


def concat(parts: list[Rows]) -> Rows:
  parts = [p for p in parts if len(p)]
  return Rows({k: np.concatenate([np.asarray(p.features[k]) for p in parts])
               for k in parts[0].features},
              {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels},
              np.concatenate([p.weights for p in parts]))


def outputs(model: model_lib.ArtClassifier, rows: Rows, start_stage: int, mesh,
            local_batch_size: int) -> dict:
  """{'logits', 'pooled', 'labels'} of the model on the rows' features (one forward)."""
  if not len(rows):
    return {"logits": {t: np.zeros((0, n), np.float32) for t, n in model.spec.heads},
            "pooled": np.zeros((0, model.pooled_features), np.float32), "labels": rows.labels}
  graphdef, state = nnx.split(model)
  state = put_replicated(state, mesh)
  apply = forward.jit_outputs(graphdef, mesh, start_stage)
  result = inference.forward_rows(
      lambda inputs: apply(state, inputs),
      lambda index: {"features": {k: np.asarray(v[index], np.float32)
                                  for k, v in rows.features.items()}},
      len(rows), local_batch_size, mesh)
  return {**result, "labels": rows.labels}


def train_heads(model: model_lib.ArtClassifier, rows: Rows, scheme: scheme_lib.LabelScheme,
                run_config, settings: ml_collections.ConfigDict, start_stage: int,
                mesh) -> int:
  """Trains `model`'s upper part in place for settings.epochs; returns the steps taken."""
  batch_size = min(run_config.batch_size, len(rows) // mesh.devices.size * mesh.devices.size)
  steps_per_epoch = len(rows) // batch_size
  schedule = optimizer_lib.learning_rate_schedule(settings.learning_rate, steps_per_epoch, 1.0)
  tx = optimizer_lib.make_optimizer(run_config.optimizer, schedule)
  is_trainable = optimizer_lib.trainable_filter(settings.trainable, model.num_stages)
  graphdef, state = steps.init_train_state(model, is_trainable, tx,
                                           jax.random.PRNGKey(settings.seed))
  state = put_replicated(jax.tree.map(np.array, state), mesh)  # copies: the step donates
  labelled = dataset.LabelledSplit("adapt", rows.weights, rows.labels)
  train_fn = steps.jit_train_step(
      mesh, graphdef=graphdef, tx=tx, schedule=schedule,
      task_weights=trainer.task_weights_from(scheme, run_config.loss),
      class_weights=trainer.class_weights_from(labelled, scheme, run_config.loss),
      label_smoothing=run_config.loss.label_smoothing, start_stage=start_stage,
      frozen_below=start_stage, head_l2=run_config.loss.head_l2,
      ordinal_weights=trainer.ordinal_weights_from(scheme, run_config.loss))
  for epoch in range(settings.epochs):
    order = np.random.default_rng([settings.seed, epoch]).permutation(len(rows))
    losses = []
    for step in range(steps_per_epoch):
      batch = _batch(rows, order[step * batch_size:(step + 1) * batch_size])
      state, metrics = train_fn(state, to_global(batch, mesh))
      losses.append(metrics["loss"])
    logging.info("adapt epoch %d: loss %.4f", epoch + 1, float(np.mean(fetch_replicated(losses))))
  nnx.update(model, steps.model_params(state), state.frozen, steps.model_batch_stats(state))
  return settings.epochs * steps_per_epoch


def _batch(rows: Rows, index: np.ndarray) -> dict:
  batch = {task: ids[index] for task, ids in rows.labels.items()}
  batch["example_weight"] = rows.weights[index].astype(np.float32)
  batch["features"] = {k: np.asarray(v[index], np.float32) for k, v in rows.features.items()}
  return batch
