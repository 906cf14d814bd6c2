"""BatchNorm folding gives the logits of the unfolded model."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artclf.inference import FoldedBatchNorm, fold_batchnorm
from artclf.model import ArtClassifier, ModelSpec


def _tiny_model_with_numpy_init(seed=0):
  """The tiny model with random weights drawn by numpy: skips compiling ~50 initialisers."""
  rng = np.random.default_rng(seed)
  abstract = nnx.eval_shape(lambda: ArtClassifier(ModelSpec(trunk="tiny"), rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)

  def fill(leaf):
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.key(seed)
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      return rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype)
    return np.zeros(leaf.shape, leaf.dtype)

  return nnx.merge(graphdef, jax.tree.map(fill, state))


def _randomise_batch_norm_stats(model, seed=0):
  rng = np.random.default_rng(seed)
  for _, module in nnx.iter_graph(model):
    if isinstance(module, nnx.BatchNorm):
      shape = module.mean[...].shape
      module.mean[...] = rng.normal(0.0, 0.5, shape).astype(np.float32)
      module.var[...] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
      module.scale[...] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
      module.bias[...] = rng.normal(0.0, 0.2, shape).astype(np.float32)


def test_folded_tiny_model_gives_same_logits():
  model = _tiny_model_with_numpy_init()
  _randomise_batch_norm_stats(model)
  images = np.random.default_rng(1).normal(0.0, 50.0, (2, 32, 32, 3)).astype(np.float32)
  folded = fold_batchnorm(model)
  forward = jax.jit(lambda model, images: model(images))
  expected = forward(model, images)
  actual = forward(folded, images)
  for task in expected:
    np.testing.assert_allclose(actual[task], expected[task], rtol=1e-4, atol=1e-4)
  # The original is untouched; the copy has no BatchNorm left in its trunk.
  assert not any(isinstance(m, FoldedBatchNorm) for _, m in nnx.iter_graph(model))
  assert not any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_graph(folded.trunks[0]))
  assert jax.tree.leaves(nnx.state(folded, nnx.BatchStat)) == []
