"""The 1x1 and depthwise convolutions equal lax's values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from artclf.models.ops import conv

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("shape,kernel_size,stride,padding", [
    ((2, 8, 8, 5), 1, 1, "VALID"),
    ((2, 9, 9, 5), 1, 2, "VALID"),
    ((2, 10, 10, 5), 1, 2, "VALID"),
    ((2, 9, 9, 5), 3, 1, "SAME"),      # falls back to lax
    ((2, 15, 15, 3), 7, 2, ((3, 3), (3, 3))),
])
def test_values_and_gradients_match_lax(shape, kernel_size, stride, padding):
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.normal(size=shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, shape[-1], 4)), jnp.float32)
  dimension_numbers = lax.conv_dimension_numbers(inputs.shape, kernel.shape, NHWC)

  def loss(conv_fn):
    return lambda x, w: jnp.sum(jnp.sin(conv_fn(x, w, (stride, stride), padding,
                                                dimension_numbers=dimension_numbers)))

  expected = jax.value_and_grad(loss(lax.conv_general_dilated), argnums=(0, 1))(inputs, kernel)
  actual = jax.jit(jax.value_and_grad(loss(conv.conv_general_dilated), argnums=(0, 1)))(
      inputs, kernel)
  for want, got in zip(jax.tree.leaves(expected), jax.tree.leaves(actual)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape,kernel_size,stride,padding,relu", [
    ((2, 8, 8, 5), 1, 1, "VALID", False),
    ((2, 9, 9, 5), 1, 2, "VALID", True),
    ((2, 9, 9, 5), 3, 1, "SAME", False),
    ((2, 9, 9, 5), 3, 1, "SAME", True),
    ((2, 15, 15, 3), 7, 2, "VALID", True),
    ((1, 3, 3, 40), 1, 1, "VALID", True),   # fewer output pixels than kernel taps
    ((1, 4, 4, 20), 3, 1, "SAME", False),
])
def test_fused_conv_batch_norm_matches_unfused_layers(shape, kernel_size, stride, padding, relu):
  rng = np.random.default_rng(1)
  inputs = jnp.asarray(rng.normal(size=shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, shape[-1], 4)), jnp.float32)
  conv_bias, scale, bias, mean = (jnp.asarray(rng.normal(size=4), jnp.float32) for _ in range(4))
  var = jnp.asarray(rng.uniform(0.5, 2.0, size=4), jnp.float32)

  def unfused(x, w, cb, gamma, beta):
    z = lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC) + cb
    y = (z - mean) / jnp.sqrt(var + 1e-3) * gamma + beta
    return jax.nn.relu(y) if relu else y

  def fused(x, w, cb, gamma, beta):
    return conv.conv_frozen_batch_norm(x, w, cb, gamma, beta, mean, var, (stride, stride),
                                       padding, 1e-3, relu)

  def loss(fn):
    return lambda *args: jnp.sum(jnp.sin(fn(*args)))

  args = (inputs, kernel, conv_bias, scale, bias)
  expected = jax.value_and_grad(loss(unfused), argnums=(0, 1, 2, 3, 4))(*args)
  actual = jax.jit(jax.value_and_grad(loss(fused), argnums=(0, 1, 2, 3, 4)))(*args)
  for want, got in zip(jax.tree.leaves(expected), jax.tree.leaves(actual)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size, stride, size", [(3, 1, 9), (3, 2, 9), (5, 2, 10), (5, 1, 7)])
def test_depthwise_convolution_equals_lax_in_values_and_gradients(kernel_size, stride, size):
  rng = np.random.default_rng(kernel_size * 10 + stride)
  x = jnp.asarray(rng.normal(size=(2, size, size, 6)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 1, 6)), jnp.float32)

  def reference(x, k):
    return lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=6)

  def ours(x, k):
    return conv.conv_general_dilated(x, k, (stride, stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=6)

  np.testing.assert_allclose(ours(x, k), reference(x, k), rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(reference), (0, 1))(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
