"""Inference-only transforms of a trained `ArtClassifier`.

`fold_batchnorm` folds every trunk BatchNorm (its moving statistics) into the kernel and
bias of the convolution before it, and replaces the BatchNorm by an identity, so that
inference runs one convolution + bias per layer instead of a convolution, a bias and a
normalisation. For BN(conv(x)) with conv(x) = x * K + b:
  scale = gamma / sqrt(var + eps);  K' = K * scale (per output channel);
  b' = (b - mean) * scale + beta.
The folded model must not be trained: its BatchNorm no longer exists.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from artclf.model import ArtClassifier, Bottleneck, ResNetTrunk


class FoldedBatchNorm(nnx.Module):
  """Stands where a BatchNorm was folded into its convolution: passes its input through."""

  def __call__(self, x, use_running_average: bool = True):
    del use_running_average
    return x


def _fold_into_conv(conv: nnx.Conv, batch_norm: nnx.BatchNorm) -> None:
  """Rewrites `conv`'s kernel and bias in place to include `batch_norm`'s running statistics."""
  scale = batch_norm.scale[...] / jnp.sqrt(batch_norm.var[...] + batch_norm.epsilon)
  # Assign new arrays (never write into the old ones: they may be shared with `model`).
  conv.kernel.set_value(conv.kernel[...] * scale)
  conv.bias.set_value((conv.bias[...] - batch_norm.mean[...]) * scale + batch_norm.bias[...])


def _fold_trunk(trunk: ResNetTrunk) -> None:
  _fold_into_conv(trunk.stem_conv, trunk.stem_bn)
  trunk.stem_bn = FoldedBatchNorm()
  for stage in trunk.stages:
    for block in stage:
      assert isinstance(block, Bottleneck)
      for conv_name, bn_name in (("conv_a", "bn_a"), ("conv_b", "bn_b"), ("conv_c", "bn_c"),
                                 ("proj_conv", "proj_bn")):
        conv = getattr(block, conv_name)
        if conv is None:
          continue
        _fold_into_conv(conv, getattr(block, bn_name))
        setattr(block, bn_name, FoldedBatchNorm())


def fold_batchnorm(model: ArtClassifier) -> ArtClassifier:
  """A copy of `model` for inference with every trunk BatchNorm folded into its conv."""
  folded = nnx.clone(model)
  for trunk in folded.trunks:
    _fold_trunk(trunk)
  return folded
