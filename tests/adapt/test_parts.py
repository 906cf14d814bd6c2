"""The parts of adapt: weighted rows in the loss, the photographs' feature store, the
held-out draw, the settings."""

import importlib

import jax.numpy as jnp
import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.adapt import adapter
from artclf.data import feature_store
from artclf.train import losses


def test_a_row_of_weight_two_counts_as_that_row_twice():
  logits = jnp.asarray([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
  targets = jnp.asarray([0, 2, -1])
  weighted = losses.masked_cross_entropy(logits, targets, example_weights=jnp.asarray([1.0, 2.0, 7.0]))
  doubled = losses.masked_cross_entropy(logits[jnp.asarray([0, 1, 1])], targets[jnp.asarray([0, 1, 1])])
  assert float(weighted) == pytest.approx(float(doubled), rel=1e-6)
  total, _ = losses.total_loss({"culture": logits}, {"culture": targets,
                                                     "example_weight": jnp.asarray([1.0, 2.0, 7.0])},
                               {"culture": 1.0})
  assert float(total) == pytest.approx(float(doubled), rel=1e-6)


def test_the_store_computes_each_photograph_once(tmp_path):
  calls = []

  def compute(images):
    calls.append(len(images))
    return {"net": np.stack([np.full(3, len(data), np.float32) for data in images])}

  store = feature_store.FeatureStore(tmp_path, "context")
  first = store.get([b"aa", b"bbb", b"aa"], compute)
  assert calls == [2] and first["net"][:, 0].tolist() == [2, 3, 2]
  again = feature_store.FeatureStore(tmp_path, "context").get([b"bbb", b"cccc"], compute)
  assert calls == [2, 1] and again["net"][:, 0].tolist() == [3, 4]
  feature_store.FeatureStore(tmp_path, "other weights").get([b"bbb"], compute)
  assert calls == [2, 1, 1]


def test_a_share_of_every_class_is_held_out_and_never_a_whole_class():
  labels = {"culture": np.array([0] * 10 + [1] * 5 + [2], np.int32)}
  scheme = scheme_lib.LabelScheme(("culture",), (("egyptian", "greek", "roman"),))
  held = adapter.holdout_rows(labels, scheme, 0.2, seed=0)
  assert sorted(labels["culture"][held].tolist()) == [0, 0, 1]
  assert adapter.holdout_rows(labels, scheme, 0.0, seed=0).size == 0
  assert held.tolist() == adapter.holdout_rows(labels, scheme, 0.2, seed=0).tolist()


def test_the_adapt_config_is_documented_and_every_setting_checked():
  module = importlib.import_module("configs.adapt")
  assert "--config=configs/adapt.py" in module.__doc__
  settings = adapter.settings_from({"epochs": 3}, holdout_fraction=0)
  assert settings.epochs == 3 and settings.holdout_fraction == 0
  with pytest.raises(adapter.AdaptError, match="unknown adapt setting"):
    adapter.settings_from({"epoch": 3})
  with pytest.raises(adapter.AdaptError, match="holdout_fraction"):
    adapter.settings_from(holdout_fraction=1.0)
