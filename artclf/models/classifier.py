"""The classifier: a trunk, a squeeze-and-excitation block and one head per task.

On the trunk's last feature map sits an SE block, then global average pooling, optional
dropout, optional standardisation (`standardize`: the pooled vector less the training
features' mean, over their standard deviation; non-trained statistics set once from the
training features before the first phase, `ArtClassifier.set_feature_statistics`) and
one linear head per task of the run's scheme (`ModelSpec.heads`: each task's
name and class count, from `artclf.scheme`). In `submodels` mode the model holds one
independent trunk+SE+head network per task (the study's design), behind the same call.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from artclf.models import trunks

class SqueezeExcite(nnx.Module):
  """Squeeze-and-excitation: channel gates in (0, 1) from the globally pooled features."""

  def __init__(self, features: int, ratio: int = 16, *, dtype=None, rngs: nnx.Rngs):
    hidden = max(1, features // ratio)
    self.reduce = nnx.Linear(features, hidden, dtype=dtype, rngs=rngs)
    self.expand = nnx.Linear(hidden, features, dtype=dtype, rngs=rngs)

  def gates(self, x):
    squeezed = jnp.mean(x, axis=(1, 2))
    return nnx.sigmoid(self.expand(nnx.relu(self.reduce(squeezed))))

  def __call__(self, x):
    return x * self.gates(x)[:, None, None, :].astype(x.dtype)


def average_pool(feature_map):
  """[B, H, W, C] -> [B, C] in float32: what the heads read (after the SE block, if any)."""
  return jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2))


def unit_vectors(pooled):
  """Each row scaled to unit length: a photograph's overall feature energy (exposure,
  texture, how much of the frame the object fills) leaves the heads' input."""
  return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-6)


class Heads(nnx.Module):
  """The part above the trunk: SE block (optional), pooling, dropout, one linear head per task."""

  def __init__(self, features: int, heads: Sequence[tuple[str, int]], *, use_se: bool,
               se_ratio: int, dropout: float, standardize: bool = False,
               unit_length: bool = False, dtype=None, rngs: nnx.Rngs):
    if standardize and use_se:
      raise ValueError("model.standardize=True needs model.use_se=False: the statistics are "
                       "those of fixed pooled features, which an SE block would change")
    self.tasks = tuple(task for task, _ in heads)
    self.unit_length = unit_length
    # Statistics, not parameters: set from the training features, never trained.
    self.feature_mean = nnx.BatchStat(jnp.zeros(features)) if standardize else None
    self.feature_scale = nnx.BatchStat(jnp.ones(features)) if standardize else None
    self.se = SqueezeExcite(features, se_ratio, dtype=dtype, rngs=rngs) if use_se else None
    self.dropout = nnx.Dropout(dropout)
    # Heads compute in f32: their logits feed the loss and calibration directly.
    self.heads = nnx.Dict({
        task: nnx.Linear(features, num_classes, rngs=rngs) for task, num_classes in heads})

  def pooled(self, feature_map):
    """The vector the heads read: the SE-gated feature map, averaged over space."""
    return average_pool(feature_map if self.se is None else self.se(feature_map))

  def __call__(self, feature_map, train: bool = False, dropout_key=None):
    return self.from_pooled(self.pooled(feature_map), train, dropout_key)

  def from_pooled(self, pooled, train: bool = False, dropout_key=None):
    """Logits of pooled vectors (dropout on in training)."""
    if train and self.dropout.rate > 0:
      if dropout_key is None:
        raise ValueError("training with dropout needs a dropout_key")
      pooled = self.dropout(pooled, deterministic=False, rngs=dropout_key)
    return self.logits_of_pooled(pooled)

  def logits_of_pooled(self, pooled):
    if self.unit_length:
      pooled = unit_vectors(pooled)
    if self.feature_mean is not None:
      pooled = (pooled - self.feature_mean[...]) / self.feature_scale[...]
    return {task: self.heads[task](pooled) for task in self.tasks}

  def set_feature_statistics(self, pooled: jax.Array, min_scale: float = 1e-3) -> None:
    """Standardisation from pooled training vectors [N, features] (scale at least min_scale)."""
    pooled = jnp.asarray(pooled, jnp.float32)
    if self.unit_length:
      pooled = unit_vectors(pooled)
    self.feature_mean[...] = jnp.mean(pooled, axis=0)
    self.feature_scale[...] = jnp.maximum(jnp.std(pooled, axis=0), min_scale)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything that fixes the network's shape and numerics: config.model and the heads."""
  # (task, number of classes) per head, in the scheme's order.
  heads: tuple[tuple[str, int], ...]
  trunk: str = "resnet50"  # see artclf.models.trunks
  use_se: bool = True
  se_ratio: int = 16
  dropout: float = 0.0
  # Standardise the pooled features before the heads (needs use_se=False).
  standardize: bool = False
  # Scale each pooled vector to unit length before the heads (and the standardisation).
  unit_length: bool = False
  submodels: bool = False
  # Keep the trunk's BatchNorm on its moving statistics even while training: small
  # fine-tuning batches give noisy batch statistics that would spoil the ImageNet ones.
  freeze_bn_stats: bool = True
  compute_dtype: str = "float32"  # 'bfloat16' on GPU/TPU; parameters stay float32.

  @classmethod
  def from_config(cls, model_config, heads: Sequence[tuple[str, int]]) -> "ModelSpec":
    """config.model's settings, with the heads of a scheme: [(task, classes), ...]."""
    fields = {f.name for f in dataclasses.fields(cls)} - {"heads"}
    settings = {k: v for k, v in dict(model_config).items() if k in fields}
    return cls(heads=tuple((task, int(n)) for task, n in heads), **settings)

  @property
  def tasks(self) -> tuple[str, ...]:
    return tuple(task for task, _ in self.heads)


class _TrunkAndHeads(nnx.Module):
  """One trunk, one SE block and `heads`: [(task, number of classes), ...]."""

  def __init__(self, spec: ModelSpec, heads: Sequence[tuple[str, int]], rngs: nnx.Rngs,
               random_trunk: bool = True):
    dtype = None if spec.compute_dtype == "float32" else jnp.dtype(spec.compute_dtype)
    self.freeze_bn_stats = spec.freeze_bn_stats
    self.trunk = trunks.build_trunk(spec.trunk, dtype=dtype, rngs=rngs, random_init=random_trunk)
    self.head = Heads(trunks.num_features(spec.trunk), heads, use_se=spec.use_se,
                      se_ratio=spec.se_ratio, dropout=spec.dropout,
                      standardize=spec.standardize, unit_length=spec.unit_length, dtype=dtype,
                      rngs=rngs)

  @property
  def pooled_stage(self) -> int:
    """The stage after the trunk's last: its 'output' is the pooled vector (no SE block)."""
    return self.trunk.num_stages + 1

  def features(self, images, train: bool = False, end_stage: int | None = None):
    if end_stage == self.pooled_stage:
      return self.head.pooled(self.features(images, train))
    return self.trunk(images, self.freeze_bn_stats or not train, end_stage=end_stage)

  def forward_from(self, features, start_stage: int, train: bool = False, dropout_key=None,
                   frozen_below: int = 0):
    if start_stage == self.pooled_stage:
      return self.head.from_pooled(features, train, dropout_key)
    x = self.trunk(features, self.freeze_bn_stats or not train, start_stage=start_stage,
                   frozen_below=frozen_below)
    return self.head(x, train, dropout_key)

  def __call__(self, images, train: bool = False, dropout_key=None, frozen_below: int = 0):
    return self.forward_from(images, 0, train, dropout_key, frozen_below)

  def logits_and_pooled_from(self, features, start_stage: int = 0):
    """Inference logits and the vector its heads read (SE-gated, pooled trunk features),
    from images (start_stage 0) or from the output of stage start_stage - 1."""
    if start_stage == self.pooled_stage:
      return self.head.logits_of_pooled(features), features
    x = self.trunk(features, True, start_stage=start_stage)
    pooled = self.head.pooled(x)
    return self.head.logits_of_pooled(pooled), pooled


class ArtClassifier(nnx.Module):
  """RGB pixels [B, H, W, 3] in [0, 255] -> {task: logits [B, classes]}, one head per task.

  With `spec.submodels` every task gets an independent network (the study's design);
  otherwise one shared trunk branches into the heads.
  """

  def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs, random_trunk: bool = True):
    # random_trunk=False: placeholder trunk weights, for weights loaded next (trunks.placeholder_init).
    self.spec = spec
    if spec.submodels:
      self.nets = nnx.Dict({task: _TrunkAndHeads(spec, ((task, n),), rngs, random_trunk)
                            for task, n in spec.heads})
    else:
      self.nets = nnx.Dict({"shared": _TrunkAndHeads(spec, spec.heads, rngs, random_trunk)})

  @property
  def trunk_modules(self) -> list[nnx.Module]:
    """The trunk of every net (one, or one per task in submodels mode)."""
    return [net.trunk for net in self.nets.values()]

  @property
  def num_stages(self) -> int:
    return self.trunk_modules[0].num_stages

  @property
  def pooled_stage(self) -> int | None:
    """The stage index whose cached 'features' are the pooled vectors the heads read: the
    heads alone then train on [N, features] vectors instead of feature maps. None with an
    SE block, whose gates need the map."""
    return None if self.spec.use_se else self.num_stages + 1

  @property
  def pooled_features(self) -> int:
    """The length of `pooled`'s vectors."""
    return len(self.nets) * trunks.num_features(self.spec.trunk)

  def set_feature_statistics(self, pooled: dict[str, jax.Array]) -> None:
    """Sets each net's standardisation from its pooled training vectors {net name: [N, D]}."""
    for name, net in self.nets.items():
      net.head.set_feature_statistics(pooled[name])

  def features(self, images, train: bool = False, end_stage: int | None = None):
    """Trunk outputs after stage `end_stage - 1` (all stages by default), keyed like
    `self.nets` ('shared', or one per task in submodels mode)."""
    return {name: net.features(images, train, end_stage) for name, net in self.nets.items()}

  def forward_from(self, features: dict[str, jax.Array], start_stage: int, train: bool = False,
                   dropout_key=None, frozen_below: int = 0) -> dict[str, jax.Array]:
    """Logits from cached trunk features: runs stages [start_stage, end) and the heads.

    start_stage == num_stages runs the heads alone (the frozen-trunk fast path), and
    start_stage == pooled_stage the heads on pooled vectors (without an SE block). Stages
    below `frozen_below` keep their moving BatchNorm statistics even in training.
    """
    logits = {}
    for name, net in self.nets.items():
      key = None if dropout_key is None else jax.random.fold_in(dropout_key, len(logits))
      logits.update(net.forward_from(features[name], start_stage, train, key, frozen_below))
    return logits

  def logits_and_pooled(self, inputs, start_stage: int = 0
                        ) -> tuple[dict[str, jax.Array], jax.Array]:
    """Inference logits, and the vectors the heads read of every net side by side
    ([B, nets x features]: familiarity, neighbours, the shortcut report), from one pass.

    `inputs`: images (start_stage 0), or {net name: output of stage start_stage - 1}
    (cached features of the frozen stages).
    """
    logits, pooled = {}, []
    for name, net in self.nets.items():
      net_inputs = inputs if start_stage == 0 else inputs[name]
      net_logits, net_pooled = net.logits_and_pooled_from(net_inputs, start_stage)
      logits.update(net_logits)
      pooled.append(net_pooled)
    return logits, jnp.concatenate(pooled, axis=-1)

  def __call__(self, images, train: bool = False, dropout_key=None,
               frozen_below: int = 0) -> dict[str, jax.Array]:
    return self.forward_from({name: images for name in self.nets}, 0, train, dropout_key,
                             frozen_below)
