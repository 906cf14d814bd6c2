"""Class-balanced multinomial logistic regression by L-BFGS: linear probes on frozen features.

Used by the shortcut report (`artclf.eval.groups`) and the probe benches.

Imports JAX only inside the functions: the entry points configure the runtime first.
"""

import functools


def _lbfgs_step(params, state, x, y, sample_weight, inv_c):
  """One L-BFGS step on the class-weighted multinomial logistic loss + 0.5 / C * |W|^2."""
  import optax

  def objective(params):
    logits = x @ params["w"] + params["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return (sample_weight * ce).sum() + 0.5 * inv_c * (params["w"] ** 2).sum()

  solver = optax.lbfgs()
  value, grad = optax.value_and_grad_from_state(objective)(params, state=state)
  updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=objective)
  return optax.apply_updates(params, updates), state


@functools.cache
def _jitted_lbfgs_step():
  import jax
  return jax.jit(_lbfgs_step)


def fit_logistic_regression(x, y, num_classes: int, c: float, iterations: int = 500,
                            rows=None):
  """Class-balanced multinomial logistic regression (scikit-learn's objective), by L-BFGS.

  Fits the rows of `x` whose label is known (y >= 0) and, if given, `rows` is True.
  Left-out rows get zero weight rather than being dropped, so that every fit on the same
  `x` (each task, each cross-validation fold, each C) reuses one compiled step.
  """
  import jax.numpy as jnp
  import numpy as np
  import optax

  y = np.asarray(y)
  use = (y >= 0) if rows is None else (y >= 0) & np.asarray(rows)
  counts = np.bincount(y[use], minlength=num_classes)
  class_weight = len(y[use]) / (num_classes * np.maximum(counts, 1))
  sample_weight = np.where(use, class_weight[np.maximum(y, 0)], 0.0).astype(np.float32)
  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  state = optax.lbfgs().init(params)
  step = _jitted_lbfgs_step()
  data = (jnp.asarray(x, jnp.float32), jnp.asarray(np.maximum(y, 0)), jnp.asarray(sample_weight),
          jnp.float32(1.0 / c))
  for _ in range(iterations):
    params, state = step(params, state, *data)
  return params
