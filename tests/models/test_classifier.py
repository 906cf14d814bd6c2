"""The network's shapes, parameter counts and SE block."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.models import resnet
from artclf.models import classifier as model_lib


def _count(state) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


@pytest.mark.parametrize("trunk", ["tiny", "resnet50"])
@pytest.mark.parametrize("submodels", [False, True])
def test_three_heads_give_batch_by_three(trunk, submodels):
  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk=trunk, submodels=submodels, dropout=0.5)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  for train in (False, True):
    logits = model(images, train=train, dropout_key=jax.random.key(3))
    assert set(logits) == set(scheme_lib.DEFAULT.tasks)
    for task in scheme_lib.DEFAULT.tasks:
      assert logits[task].shape == (2, 3)
      assert np.all(np.isfinite(logits[task]))
  assert len(model.trunk_modules) == (3 if submodels else 1)


def test_submodels_have_independent_trunks():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", submodels=True),
                                  rngs=nnx.Rngs(0))
  a, b = model.nets["culture"].trunk, model.nets["medium"].trunk
  assert a is not b
  assert not np.allclose(a.stem_conv.kernel.get_value(), b.stem_conv.kernel.get_value())
  # Each submodel carries only its own task's head.
  assert set(model.nets["period"].head.heads) == {"period"}


def test_features_then_heads_equals_full_forward():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny"), rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(2), (3, 64, 64, 3))
  direct = model(images)
  for cut in range(model.num_stages + 1):
    via_features = model.forward_from(model.features(images, end_stage=cut), start_stage=cut)
    for task in scheme_lib.DEFAULT.tasks:
      np.testing.assert_allclose(direct[task], via_features[task], rtol=1e-5, atol=1e-6)


def test_se_block_keeps_shape_and_gates_lie_in_open_unit_interval():
  se = model_lib.SqueezeExcite(32, ratio=4, rngs=nnx.Rngs(0))
  x = 10.0 * jax.random.normal(jax.random.key(0), (4, 5, 5, 32))
  y = se(x)
  assert y.shape == x.shape
  gates = se.gates(x)
  assert gates.shape == (4, 32)
  assert np.all(gates > 0) and np.all(gates < 1)
  # The block rescales channels, so each output channel is the input times its gate.
  np.testing.assert_allclose(y, x * gates[:, None, None, :], rtol=1e-6)


def test_without_se_block_there_are_no_se_parameters():
  with_se = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny"), rngs=nnx.Rngs(0))
  without = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", use_se=False),
                                    rngs=nnx.Rngs(0))
  features = resnet.TINY.num_features
  hidden = features // 16
  se_params = features * hidden + hidden + hidden * features + features
  assert _count(nnx.state(with_se, nnx.Param)) - _count(nnx.state(without, nnx.Param)) == se_params


def test_frozen_bn_stats_do_not_move_in_training():
  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", freeze_bn_stats=True)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  model(jax.random.normal(jax.random.key(0), (2, 64, 64, 3)), train=True)
  after = nnx.state(model, nnx.BatchStat)
  jax.tree.map(np.testing.assert_array_equal, before, after)

  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", freeze_bn_stats=False)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  model(jax.random.normal(jax.random.key(0), (2, 64, 64, 3)), train=True)
  after = nnx.state(model, nnx.BatchStat)
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))


def test_bfloat16_compute_keeps_float32_parameters():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", compute_dtype="bfloat16"),
                                  rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
  assert model.features(images)["shared"].dtype == jnp.bfloat16
  logits = model(images)
  assert all(v.dtype == jnp.float32 for v in logits.values())
  assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}
  reference = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny"), rngs=nnx.Rngs(0))
  for task in scheme_lib.DEFAULT.tasks:
    np.testing.assert_allclose(logits[task], reference(images)[task], rtol=0.1, atol=0.5)
