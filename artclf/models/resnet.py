"""ResNet v1 trunks, built layer for layer as `keras.applications.ResNet50` builds them.

So the Keras ImageNet weights load without any change (see `artclf.models.imagenet`):
  * stem: zero-pad 3, 7x7 stride-2 'valid' conv, BN, ReLU, zero-pad 1, 3x3 stride-2 max-pool;
  * bottleneck blocks with the stride in the first 1x1 conv (v1) and in the projection;
  * every conv has a bias; BatchNorm uses eps 1e-3 and momentum 0.99.
Depth (blocks per stage) and width (channels of the first stage) are configurable, so that
tests can use a tiny trunk with the same code.

The trunk takes RGB pixels (uint8 or float in [0, 255]) and makes its own input, as the
Keras weights expect ('caffe': BGR, ImageNet mean subtracted, no scaling), so that every
path into the network (training, evaluation, prediction, Grad-CAM) sees the same input.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from artclf.models.ops import conv, pooling

# ImageNet channel means in BGR order, as keras.applications.imagenet_utils subtracts them.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

# Keras' BatchNormalization defaults for ResNet50.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


@dataclasses.dataclass(frozen=True)
class TrunkSpec:
  """Depth and width of a ResNet v1 trunk.

  `stage_sizes` holds the number of bottleneck blocks of stages 2..5 (Keras numbering);
  `width` is the bottleneck width of stage 2 (it doubles every stage, and block outputs
  are 4x the bottleneck width).
  """
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  width: int = 64

  @property
  def num_features(self) -> int:
    return self.width * 2 ** (len(self.stage_sizes) - 1) * 4


RESNET50 = TrunkSpec((3, 4, 6, 3), 64)
# For tests: same topology, one block per stage, narrow.
TINY = TrunkSpec((1, 1, 1, 1), 4)


def trunk_spec(name: str) -> TrunkSpec:
  """Looks up a named trunk ('resnet50', 'tiny') or parses 'resnet:3,4,6,3:64'."""
  if name == "resnet50":
    return RESNET50
  if name == "tiny":
    return TINY
  if name.startswith("resnet:"):
    _, sizes, width = name.split(":")
    return TrunkSpec(tuple(int(s) for s in sizes.split(",")), int(width))
  raise ValueError(f"unknown trunk {name!r}: use 'resnet50', 'tiny' or 'resnet:3,4,6,3:64'")


def _conv(in_features, out_features, kernel, stride, padding, dtype, rngs, kernel_init=None):
  # kernel_init: None for nnx's random initialisation, or trunks.placeholder_init.
  initializers = {} if kernel_init is None else {"kernel_init": kernel_init, "bias_init": kernel_init}
  return nnx.Conv(in_features, out_features, (kernel, kernel), (stride, stride),
                  padding=padding, use_bias=True, dtype=dtype, rngs=rngs, **initializers,
                  # 1x1 convolutions get matrix-product gradients (see artclf.models.ops.conv).
                  conv_general_dilated=conv.conv_general_dilated)


def _batch_norm(features, dtype, rngs):
  return nnx.BatchNorm(features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                       rngs=rngs)


def _conv_batch_norm(conv_layer: nnx.Conv, bn_layer: nnx.BatchNorm, x, use_running_average: bool,
                     relu: bool = False):
  """bn_layer(conv_layer(x)), then ReLU if `relu`; on moving statistics, fused (`artclf.models.ops.conv`)."""
  if not use_running_average:
    y = bn_layer(conv_layer(x), use_running_average=False)
    return nnx.relu(y) if relu else y
  dtype = conv_layer.dtype or x.dtype
  return conv.conv_frozen_batch_norm(
      x.astype(dtype), conv_layer.kernel[...], conv_layer.bias[...], bn_layer.scale[...],
      bn_layer.bias[...], bn_layer.mean[...], bn_layer.var[...], tuple(conv_layer.strides),
      conv_layer.padding, bn_layer.epsilon, relu)


class Bottleneck(nnx.Module):
  """ResNet v1 bottleneck: 1x1 (stride) -> 3x3 -> 1x1, plus identity or projection."""

  def __init__(self, in_features: int, width: int, stride: int, *, dtype, rngs: nnx.Rngs,
               kernel_init=None):
    out_features = 4 * width
    self.conv_a = _conv(in_features, width, 1, stride, "VALID", dtype, rngs, kernel_init)
    self.bn_a = _batch_norm(width, dtype, rngs)
    self.conv_b = _conv(width, width, 3, 1, "SAME", dtype, rngs, kernel_init)
    self.bn_b = _batch_norm(width, dtype, rngs)
    self.conv_c = _conv(width, out_features, 1, 1, "VALID", dtype, rngs, kernel_init)
    self.bn_c = _batch_norm(out_features, dtype, rngs)
    if stride != 1 or in_features != out_features:
      self.proj_conv = _conv(in_features, out_features, 1, stride, "VALID", dtype, rngs,
                             kernel_init)
      self.proj_bn = _batch_norm(out_features, dtype, rngs)
    else:
      self.proj_conv = self.proj_bn = None

  def __call__(self, x, use_running_average: bool):
    y = _conv_batch_norm(self.conv_a, self.bn_a, x, use_running_average, relu=True)
    y = _conv_batch_norm(self.conv_b, self.bn_b, y, use_running_average, relu=True)
    y = _conv_batch_norm(self.conv_c, self.bn_c, y, use_running_average)
    shortcut = x if self.proj_conv is None else _conv_batch_norm(
        self.proj_conv, self.proj_bn, x, use_running_average)
    return nnx.relu(y + shortcut)


def caffe_input(pixels) -> jnp.ndarray:
  """RGB pixels [..., 3] in [0, 255] -> float32 BGR minus the ImageNet mean (Keras 'caffe')."""
  return jnp.asarray(pixels, jnp.float32)[..., ::-1] - CAFFE_MEAN_BGR


class ResNetTrunk(nnx.Module):
  """ResNet v1 feature extractor: RGB pixels [B, H, W, 3] in [0, 255] -> [B, H/32, W/32, C]."""

  def __init__(self, spec: TrunkSpec = RESNET50, *, dtype=None, rngs: nnx.Rngs, kernel_init=None):
    self.spec = spec
    stem_features = spec.width
    self.stem_conv = _conv(3, stem_features, 7, 2, "VALID", dtype, rngs, kernel_init)
    self.stem_bn = _batch_norm(stem_features, dtype, rngs)
    stages = []
    in_features = stem_features
    for stage_index, num_blocks in enumerate(spec.stage_sizes):
      width = spec.width * 2 ** stage_index
      blocks = []
      for block_index in range(num_blocks):
        # Stage 2 keeps the resolution (the max-pool already halved it); later stages
        # downsample in their first block.
        stride = 2 if (block_index == 0 and stage_index > 0) else 1
        blocks.append(Bottleneck(in_features, width, stride, dtype=dtype, rngs=rngs,
                                 kernel_init=kernel_init))
        in_features = 4 * width
      stages.append(nnx.List(blocks))
    self.stages = nnx.List(stages)

  @property
  def num_stages(self) -> int:
    """Stages in Keras' numbering conv1..conv5: the stem counts as the first."""
    return len(self.spec.stage_sizes) + 1

  def _stem(self, x, use_running_average: bool):
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = _conv_batch_norm(self.stem_conv, self.stem_bn, x, use_running_average, relu=True)
    # Zero padding before the max-pool as in Keras; after a ReLU it equals -inf padding.
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return pooling.max_pool_3x3_stride2(x)

  def __call__(self, x, use_running_average: bool = True, start_stage: int = 0,
               end_stage: int | None = None, frozen_below: int = 0):
    """Runs stages [start_stage, end_stage): stage 0 is the stem, 1.. the residual stages.

    With start_stage 0, `x` is RGB pixels; with start_stage > 0, the output of stage
    start_stage - 1: this lets frozen lower stages be computed once and cached (see
    `artclf.data.feature_cache`). Stages below `frozen_below` always use their moving
    BatchNorm statistics: a frozen stage computes the same function whether it runs in
    the train step or once for the cache.
    """
    end_stage = self.num_stages if end_stage is None else end_stage
    for stage_index in range(start_stage, end_stage):
      running_average = use_running_average or stage_index < frozen_below
      if stage_index == 0:
        x = self._stem(caffe_input(x), running_average)
      else:
        for block in self.stages[stage_index - 1]:
          x = block(x, running_average)
    return x


class ImageNetClassifier(nnx.Module):
  """The trunk with Keras' original fc1000 head (softmax over ImageNet classes)."""

  def __init__(self, spec: TrunkSpec = RESNET50, *, rngs: nnx.Rngs):
    self.trunk = ResNetTrunk(spec, rngs=rngs)
    self.fc1000 = nnx.Linear(spec.num_features, 1000, rngs=rngs)

  def __call__(self, images):
    pooled = jnp.mean(self.trunk(images, use_running_average=True), axis=(1, 2))
    return self.fc1000(pooled)
