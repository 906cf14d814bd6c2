"""The ResNet trunk: Keras' parameter counts, downsampling, spec parsing, the fused layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf.models import resnet


def _count(state) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


def test_resnet50_parameter_counts_match_keras():
  # Abstract shapes only: no need to allocate 100 MB to count.
  classifier = nnx.eval_shape(lambda: resnet.ImageNetClassifier(rngs=nnx.Rngs(0)))
  trunk = classifier.trunk
  assert _count(nnx.state(trunk)) == 23_587_712
  assert _count(nnx.state(trunk, nnx.Param)) == 23_534_592
  assert _count(nnx.state(trunk, nnx.BatchStat)) == 53_120
  assert _count(nnx.state(classifier)) == 25_636_712


def test_tiny_trunk_downsamples_by_32():
  trunk = resnet.ResNetTrunk(resnet.TINY, rngs=nnx.Rngs(0))
  out = trunk(jnp.zeros((1, 96, 96, 3)))
  assert out.shape == (1, 3, 3, resnet.TINY.num_features)


def test_trunk_spec_parsing():
  assert resnet.trunk_spec("resnet:2,2:16") == resnet.TrunkSpec((2, 2), 16)
  with pytest.raises(ValueError, match="unknown trunk"):
    resnet.trunk_spec("vgg16")


def test_fused_layers_match_the_plain_flax_layers(monkeypatch):
  """The trunk on moving statistics (fused conv + BN + ReLU, custom max-pool) equals
  nnx.Conv -> nnx.BatchNorm -> relu and nnx.max_pool, in values and parameter gradients."""
  trunk = resnet.ResNetTrunk(resnet.TINY, rngs=nnx.Rngs(0))
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

  monkeypatch.setattr(resnet, "_conv_batch_norm", plain_conv_batch_norm)
  monkeypatch.setattr(resnet.pooling, "max_pool_3x3_stride2",
                      lambda x: nnx.max_pool(x, (3, 3), strides=(2, 2), padding="VALID"))
  plain_value, plain_grads = value_and_grads()
  np.testing.assert_allclose(fused_value, plain_value, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3),
               fused_grads, plain_grads)
