"""The stem max-pool with its elementwise gradient equals lax's reduce_window max."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf.models.ops import pooling


@pytest.mark.parametrize("shape", [(2, 10, 10, 3), (1, 9, 11, 2), (2, 114, 114, 4)])
def test_values_and_gradients_match_lax(shape):
  rng = np.random.default_rng(0)
  # ReLU outputs, rounded so that windows hold ties (zeros and repeats): the gradient
  # must go to the same tap as XLA's select-and-scatter picks.
  x = jnp.asarray(np.maximum(np.round(rng.normal(size=shape), 1), 0), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(shape[0], (shape[1] - 3) // 2 + 1,
                                         (shape[2] - 3) // 2 + 1, shape[3])), jnp.float32)

  def loss(pool):
    return lambda x: jnp.sum(pool(x) * weights)

  reference = lambda x: nnx.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
  want_value, want_grad = jax.value_and_grad(loss(reference))(x)
  got_value, got_grad = jax.jit(jax.value_and_grad(loss(pooling.max_pool_3x3_stride2)))(x)
  np.testing.assert_allclose(got_value, want_value, rtol=1e-6)
  # Same routing of every gradient; sums of overlapping windows may differ in rounding.
  np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-5)


def test_too_small_input_is_a_clear_error():
  with pytest.raises(ValueError, match="smaller than the 3x3 window"):
    pooling.max_pool_3x3_stride2(jnp.zeros((1, 2, 5, 1)))
