"""Optimiser and learning-rate schedule, and which parameters a training phase updates.

Adam (or AdamW) with an exponential-decay schedule, an optional linear warmup and
optional global-norm clipping, as the study trained. A phase's `trainable` setting
picks the parameters it updates: 'heads' (SE block and heads, trunk frozen), 'last:N'
(heads plus the trunk's last N stages, Keras' conv5 being the last) or 'all'.
"""

from __future__ import annotations

import optax


def learning_rate_schedule(learning_rate: float, steps_per_epoch: int, decay_rate: float,
                           decay_epochs: float = 1.0, warmup_steps: int = 0,
                           staircase: bool = False) -> optax.Schedule:
  """Exponential decay by `decay_rate` every `decay_epochs` epochs, after a linear warmup."""
  decay = optax.exponential_decay(
      init_value=learning_rate,
      transition_steps=max(1, round(decay_epochs * steps_per_epoch)),
      decay_rate=decay_rate,
      staircase=staircase)
  if warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def make_optimizer(optimizer_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """optax chain from config.optimizer: {name: adam|adamw, b1, b2, eps, weight_decay, clip_norm}."""
  name = optimizer_config.name
  if name == "adam" and optimizer_config.weight_decay:
    raise ValueError(f"optimizer.weight_decay={optimizer_config.weight_decay} does nothing with "
                     "optimizer.name='adam': use name='adamw' for decoupled weight decay, or "
                     "weight_decay=0")
  if name == "adam":
    base = optax.adam(schedule, b1=optimizer_config.b1, b2=optimizer_config.b2,
                      eps=optimizer_config.eps)
  elif name == "adamw":
    base = optax.adamw(schedule, b1=optimizer_config.b1, b2=optimizer_config.b2,
                       eps=optimizer_config.eps, weight_decay=optimizer_config.weight_decay)
  else:
    raise ValueError(f"unknown optimizer {name!r}: use 'adam' or 'adamw'")
  if optimizer_config.clip_norm:
    return optax.chain(optax.clip_by_global_norm(optimizer_config.clip_norm), base)
  return base


def first_trainable_stage(trainable: str, num_stages: int) -> int:
  """The lowest trunk stage a phase trains (num_stages when only the heads train).

  Stages below it are frozen, so their outputs can be cached.
  """
  if trainable == "heads":
    return num_stages
  if trainable == "all":
    return 0
  if trainable.startswith("last:"):
    n = int(trainable.split(":", 1)[1])
    if not 0 <= n <= num_stages:
      raise ValueError(f"trainable={trainable!r}: the trunk has {num_stages} stages")
    return num_stages - n
  raise ValueError(f"unknown trainable setting {trainable!r}: use 'heads', 'last:N' or 'all'")


def trainable_filter(trainable: str, num_stages: int):
  """An nnx filter (path, value) -> bool selecting the parameters a phase updates."""
  first = first_trainable_stage(trainable, num_stages)

  def is_trainable(path, value) -> bool:
    del value
    if "trunk" not in path:
      return True  # SE block and heads always train.
    if "stages" in path:
      # ('...', 'trunk', 'stages', i, block, ...): residual stage i is trunk stage i + 1.
      stage = path[path.index("stages") + 1] + 1
    else:
      stage = 0  # The stem.
    return stage >= first

  return is_trainable
