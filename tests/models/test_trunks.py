"""Every trunk behind the one classifier: shapes, stages, ImageNet weights, training and predict."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import artclf
from artclf import scheme as scheme_lib
from artclf.models import classifier as model_lib
from artclf.models import efficientnet_imagenet, imagenet, trunks
from artclf.run import trained as trained_model
from artclf.serve import gradcam
from artclf.train import optimizer, trainer
from configs import tiny
from tests.data.fixtures import build_synthetic


@pytest.mark.parametrize("trunk", ["tiny", "efficientnet_lite_tiny"])
@pytest.mark.parametrize("submodels", [False, True])
def test_every_trunk_gives_three_heads_and_caches_at_any_stage(trunk, submodels):
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk=trunk, submodels=submodels),
                                  rngs=nnx.Rngs(0))
  pixels = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)), jnp.uint8)
  logits = model(pixels)
  assert {t: v.shape for t, v in logits.items()} == {t: (2, 3) for t in scheme_lib.DEFAULT.tasks}
  for cut in range(1, model.num_stages + 1):
    cached = model.features(pixels, end_stage=cut)
    np.testing.assert_allclose(model.forward_from(cached, cut)["period"], logits["period"],
                               rtol=1e-4, atol=1e-5)


def test_last_n_stages_select_parameters_of_the_lite_trunk():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="efficientnet_lite_tiny"),
                                  rngs=nnx.Rngs(0))
  assert model.num_stages == 9
  def count(trainable):
    keep = optimizer.trainable_filter(trainable, model.num_stages)
    return sum(x.size for x in jax_leaves(nnx.state(model, nnx.All(nnx.Param, keep))))
  heads, last1, everything = count("heads"), count("last:1"), count("all")
  assert heads < last1 < everything


def jax_leaves(state):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.leaves(state)


def test_unknown_trunks_and_trunks_without_weights_are_named():
  with pytest.raises(ValueError, match="unknown trunk 'vgg16'"):
    trunks.build_trunk("vgg16", rngs=nnx.Rngs(0))
  with pytest.raises(imagenet.WeightsError, match="efficientnet_lite_tiny trunk has no ImageNet"):
    trunks.load_imagenet_weights([], "efficientnet_lite_tiny")


def test_a_lite_trunk_trains_on_cached_features_and_predicts(tmp_path):
  config = tiny.get_config()
  config.model.trunk = "efficientnet_lite_tiny"
  config.data.data_dir = str(build_synthetic(tmp_path, num_train=16, num_val=8))
  config.data.max_examples = 0
  config.feature_cache.enabled = "always"
  config.feature_cache.dir = str(tmp_path / "cache")
  config.phase1.epochs, config.phase2.epochs = 1, 1
  config.phase2.trainable = "last:2"
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  assert summary["best_step"] is not None
  model = trained_model.load(tmp_path / "run")
  picture = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
  result = artclf.predict(picture, model=model)
  assert sum(result["culture"]["distribution"].values()) == pytest.approx(1.0, abs=1e-5)
  from PIL import Image  # pylint: disable=import-outside-toplevel
  heatmaps = gradcam.explain(model, Image.fromarray(picture))
  assert heatmaps["medium"].shape == (50, 70)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_the_classifier_gets_the_imagenet_lite_trunk(name):
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk=name), rngs=nnx.Rngs(0))
  trunks.load_imagenet_weights(model.trunk_modules, name)
  reference = efficientnet_imagenet.load_imagenet_classifier(name).trunk
  pixels = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3)), jnp.uint8)
  np.testing.assert_allclose(model.nets["shared"].trunk(pixels), reference(pixels), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0"])
def test_a_placeholder_trunk_filled_with_imagenet_weights_is_the_random_one_filled(name):
  # The trainer builds the trunk with placeholder weights when it loads ImageNet's next:
  # every trunk weight must then be ImageNet's, and the heads as random as before.
  config = tiny.get_config()
  config.model.update(trunk=name, standardize=True, use_se=False, pretrained=True)
  placeholder = trainer.build_model(config, scheme_lib.DEFAULT, seed=3)
  random = trained_model.build_model(config, scheme_lib.DEFAULT, seed=3)
  trunks.load_imagenet_weights(random.trunk_modules, name)
  got, want = (nnx.to_flat_state(nnx.state(m)) for m in (placeholder, random))
  assert [path for path, _ in got] == [path for path, _ in want]
  for (path, value), (_, expected) in zip(got, want):
    np.testing.assert_array_equal(np.asarray(value[...]), np.asarray(expected[...]), err_msg=str(path))
  assert np.abs(np.asarray(placeholder.nets["shared"].head.heads["period"].kernel[...])).max() > 0
