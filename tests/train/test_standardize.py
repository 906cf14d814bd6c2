"""model.standardize: the heads read standardised pooled features, with statistics set once
from the training features, saved with the run, and never trained."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.models import classifier as model_lib
from artclf.run import trained as trained_lib
from artclf.train import trainer
from configs import tiny
from tests.data import fixtures as data_fixtures


def _spec(**settings):
  return model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", use_se=False,
                             **settings)


def test_heads_read_the_standardised_vector():
  model = model_lib.ArtClassifier(_spec(standardize=True), rngs=nnx.Rngs(0))
  head = model.nets["shared"].head
  features = head.heads["culture"].in_features
  rng = np.random.default_rng(0)
  training = rng.normal(5.0, 3.0, (50, features)).astype(np.float32)
  model.set_feature_statistics({"shared": training})
  np.testing.assert_allclose(head.feature_mean[...], training.mean(0), atol=1e-5)
  pooled = jnp.asarray(rng.normal(5.0, 3.0, (4, features)), jnp.float32)
  plain = (pooled - training.mean(0)) / training.std(0)
  np.testing.assert_allclose(head.logits_of_pooled(pooled)["culture"],
                             head.heads["culture"](plain), rtol=1e-4, atol=1e-4)


def test_statistics_are_not_parameters_and_need_no_se_block():
  plain = model_lib.ArtClassifier(_spec(), rngs=nnx.Rngs(0))
  standardised = model_lib.ArtClassifier(_spec(standardize=True), rngs=nnx.Rngs(0))
  count = lambda m, kind: sum(x.size for x in jax.tree.leaves(nnx.state(m, kind)))
  assert count(standardised, nnx.Param) == count(plain, nnx.Param)
  assert count(standardised, nnx.BatchStat) > count(plain, nnx.BatchStat)
  with pytest.raises(ValueError, match="use_se=False"):
    model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny",
                                                use_se=True, standardize=True), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def synthetic_data_dir(tmp_path_factory):
  return data_fixtures.build_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=24,
                                       num_val=10)


def _config(data_dir, cache: str, cache_dir):
  config = tiny.get_config()
  config.data.data_dir = str(data_dir)
  config.data.max_examples = 0
  config.data.augment.update(random_crop=False, horizontal_flip=False, max_rotation_deg=0.0,
                             brightness=0.0, contrast=0.0)
  config.model.update(use_se=False, standardize=True, dropout=0.0)
  config.feature_cache.update(enabled=cache, dir=str(cache_dir))
  config.phase1 = tiny.common.phase(epochs=2, learning_rate=1e-2, trainable="heads")
  config.phase2.epochs = 0
  config.familiarity.enabled = False
  return config


def test_training_sets_the_statistics_from_the_training_features(synthetic_data_dir, tmp_path):
  """From the feature cache or from a pass over the training images: the same statistics,
  saved with the run, and the heads trained on them."""
  means = {}
  for cache in ("always", "never"):
    trainer.train_and_evaluate(_config(synthetic_data_dir, cache, tmp_path / "cache"),
                               tmp_path / cache)
    head = trained_lib.load(tmp_path / cache).model.nets["shared"].head
    means[cache] = np.asarray(head.feature_mean[...])
    assert np.abs(means[cache]).max() > 0
    assert not np.allclose(np.asarray(head.feature_scale[...]), 1.0)
  np.testing.assert_allclose(means["always"], means["never"], rtol=1e-3, atol=1e-4)


def test_unit_length_vectors_make_the_heads_blind_to_a_vector_s_scale():
  model = model_lib.ArtClassifier(_spec(standardize=True, unit_length=True), rngs=nnx.Rngs(0))
  head = model.nets["shared"].head
  features = head.heads["culture"].in_features
  rng = np.random.default_rng(1)
  training = np.abs(rng.normal(2.0, 1.0, (40, features))).astype(np.float32)
  model.set_feature_statistics({"shared": training})
  units = training / np.linalg.norm(training, axis=1, keepdims=True)
  np.testing.assert_allclose(head.feature_mean[...], units.mean(0), atol=1e-5)
  pooled = jnp.asarray(training[:3])
  for task in scheme_lib.DEFAULT.tasks:
    np.testing.assert_allclose(head.logits_of_pooled(pooled)[task],
                               head.logits_of_pooled(7.0 * pooled)[task], rtol=1e-4, atol=1e-4)
  plain = model_lib.ArtClassifier(_spec(standardize=True), rngs=nnx.Rngs(0)).nets["shared"].head
  plain.feature_mean[...], plain.feature_scale[...] = head.feature_mean[...], head.feature_scale[...]
  assert not np.allclose(plain.logits_of_pooled(7.0 * pooled)["culture"],
                         head.logits_of_pooled(7.0 * pooled)["culture"], atol=1e-3)
