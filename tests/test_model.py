"""The network's shapes, parameter counts and SE block."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf import labels
from artclf import model as model_lib


def _count(state) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


def test_resnet50_parameter_counts_match_keras():
  # Abstract shapes only: no need to allocate 100 MB to count.
  classifier = nnx.eval_shape(lambda: model_lib.ImageNetClassifier(rngs=nnx.Rngs(0)))
  trunk = classifier.trunk
  assert _count(nnx.state(trunk)) == 23_587_712
  assert _count(nnx.state(trunk, nnx.Param)) == 23_534_592
  assert _count(nnx.state(trunk, nnx.BatchStat)) == 53_120
  assert _count(nnx.state(classifier)) == 25_636_712


@pytest.mark.parametrize("trunk", ["tiny", "resnet50"])
@pytest.mark.parametrize("submodels", [False, True])
def test_three_heads_give_batch_by_three(trunk, submodels):
  spec = model_lib.ModelSpec(trunk=trunk, submodels=submodels, dropout=0.5)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  for train in (False, True):
    logits = model(images, train=train, dropout_key=jax.random.key(3))
    assert set(logits) == set(labels.TASKS)
    for task in labels.TASKS:
      assert logits[task].shape == (2, 3)
      assert np.all(np.isfinite(logits[task]))
  assert len(model.trunks) == (3 if submodels else 1)


def test_submodels_have_independent_trunks():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny", submodels=True),
                                  rngs=nnx.Rngs(0))
  a, b = model.nets["culture"].trunk, model.nets["medium"].trunk
  assert a is not b
  assert not np.allclose(a.stem_conv.kernel.get_value(), b.stem_conv.kernel.get_value())
  # Each submodel carries only its own task's head.
  assert set(model.nets["period"].head.heads) == {"period"}


def test_tiny_trunk_downsamples_by_32():
  trunk = model_lib.ResNetTrunk(model_lib.TINY, rngs=nnx.Rngs(0))
  out = trunk(jnp.zeros((1, 96, 96, 3)))
  assert out.shape == (1, 3, 3, model_lib.TINY.num_features)


def test_features_then_heads_equals_full_forward():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny"), rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(2), (3, 64, 64, 3))
  direct = model(images)
  for cut in range(model.num_stages + 1):
    via_features = model.forward_from(model.features(images, end_stage=cut), start_stage=cut)
    for task in labels.TASKS:
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
  with_se = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny"), rngs=nnx.Rngs(0))
  without = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny", use_se=False),
                                    rngs=nnx.Rngs(0))
  features = model_lib.TINY.num_features
  hidden = features // 16
  se_params = features * hidden + hidden + hidden * features + features
  assert _count(nnx.state(with_se, nnx.Param)) - _count(nnx.state(without, nnx.Param)) == se_params


def test_frozen_bn_stats_do_not_move_in_training():
  spec = model_lib.ModelSpec(trunk="tiny", freeze_bn_stats=True)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  model(jax.random.normal(jax.random.key(0), (2, 64, 64, 3)), train=True)
  after = nnx.state(model, nnx.BatchStat)
  jax.tree.map(np.testing.assert_array_equal, before, after)

  spec = model_lib.ModelSpec(trunk="tiny", freeze_bn_stats=False)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  model(jax.random.normal(jax.random.key(0), (2, 64, 64, 3)), train=True)
  after = nnx.state(model, nnx.BatchStat)
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))


def test_trunk_spec_parsing():
  assert model_lib.trunk_spec("resnet:2,2:16") == model_lib.TrunkSpec((2, 2), 16)
  with pytest.raises(ValueError, match="unknown trunk"):
    model_lib.trunk_spec("vgg16")


def test_bfloat16_compute_keeps_float32_parameters():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny", compute_dtype="bfloat16"),
                                  rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
  assert model.features(images)["shared"].dtype == jnp.bfloat16
  logits = model(images)
  assert all(v.dtype == jnp.float32 for v in logits.values())
  assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}
  reference = model_lib.ArtClassifier(model_lib.ModelSpec(trunk="tiny"), rngs=nnx.Rngs(0))
  for task in labels.TASKS:
    np.testing.assert_allclose(logits[task], reference(images)[task], rtol=0.1, atol=0.5)


def test_fused_layers_match_the_plain_flax_layers(monkeypatch):
  """The trunk on moving statistics (fused conv + BN + ReLU, custom max-pool) equals
  nnx.Conv -> nnx.BatchNorm -> relu and nnx.max_pool, in values and parameter gradients."""
  trunk = model_lib.ResNetTrunk(model_lib.TINY, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  for _, variable in nnx.iter_graph(trunk):
    if isinstance(variable, nnx.BatchNorm):
      channels = variable.mean[...].shape
      variable.mean.set_value(jnp.asarray(rng.normal(size=channels), jnp.float32))
      variable.var.set_value(jnp.asarray(rng.uniform(0.5, 2, size=channels), jnp.float32))
      variable.scale.set_value(jnp.asarray(rng.normal(size=channels), jnp.float32))
  images = jnp.asarray(rng.normal(size=(2, 64, 64, 3)), jnp.float32)

  def loss(params, rest, graphdef):
    return jnp.sum(jnp.sin(nnx.merge(graphdef, params, rest)(images, use_running_average=True)))

  def value_and_grads():
    graphdef, params, rest = nnx.split(trunk, nnx.Param, ...)
    return jax.value_and_grad(loss)(params, rest, graphdef)

  fused_value, fused_grads = value_and_grads()

  def plain_conv_batch_norm(conv_layer, bn_layer, x, use_running_average, relu=False):
    y = bn_layer(conv_layer(x), use_running_average=use_running_average)
    return nnx.relu(y) if relu else y

  monkeypatch.setattr(model_lib, "_conv_batch_norm", plain_conv_batch_norm)
  monkeypatch.setattr(model_lib.pooling, "max_pool_3x3_stride2",
                      lambda x: nnx.max_pool(x, (3, 3), strides=(2, 2), padding="VALID"))
  plain_value, plain_grads = value_and_grads()
  np.testing.assert_allclose(fused_value, plain_value, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3),
               fused_grads, plain_grads)
