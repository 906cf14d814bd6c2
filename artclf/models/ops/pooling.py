"""The stem's 3x3, stride-2 max-pool, with a gradient XLA:CPU runs fast.

`nnx.max_pool` lowers to `reduce_window`; its gradient (select-and-scatter) becomes, on
XLA:CPU, a variadic reduce-window over value and index planes that took ~1.2 s of the
4-5 s spent per ResNet50 train step outside the matrix products (bench/README.md). Here the
forward pass is the maximum of the nine strided views of the input, and the backward pass
routes each output gradient to the first maximal tap (row-major window order, as XLA's
select-and-scatter does) with elementwise selects, then interleaves the four
(row, column)-parity planes of the input gradient. Values and gradients equal lax's
(tests/test_pooling.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_WINDOW = 3
_STRIDE = 2


def _taps(x, out_h, out_w):
  """The nine strided views x[:, di + 2i, dj + 2j, :] in row-major window order."""
  return [lax.slice(x, (0, di, dj, 0),
                    (x.shape[0], di + _STRIDE * (out_h - 1) + 1, dj + _STRIDE * (out_w - 1) + 1,
                     x.shape[3]), (1, _STRIDE, _STRIDE, 1))
          for di in range(_WINDOW) for dj in range(_WINDOW)]


def _output_size(size: int) -> int:
  if size < _WINDOW:
    raise ValueError(f"max-pool input of size {size} is smaller than the {_WINDOW}x{_WINDOW} window")
  return (size - _WINDOW) // _STRIDE + 1


@jax.custom_vjp
def max_pool_3x3_stride2(x):
  """3x3 max-pool, stride 2, 'VALID' padding, on NHWC inputs."""
  out_h, out_w = _output_size(x.shape[1]), _output_size(x.shape[2])
  taps = _taps(x, out_h, out_w)
  result = taps[0]
  for tap in taps[1:]:
    result = jnp.maximum(result, tap)
  return result


def _forward(x):
  y = max_pool_3x3_stride2(x)
  return y, (x, y)


def _backward(residuals, output_grad):
  x, y = residuals
  out_h, out_w = y.shape[1:3]
  plane_h, plane_w = -(-x.shape[1] // 2), -(-x.shape[2] // 2)
  zero = jnp.zeros((), output_grad.dtype)
  taken = jnp.zeros(y.shape, bool)
  # planes[p][q] holds the gradient at input rows 2a + p and columns 2b + q.
  planes = [[None, None], [None, None]]
  for index, tap in enumerate(_taps(x, out_h, out_w)):
    di, dj = divmod(index, _WINDOW)
    chosen = (tap == y) & ~taken
    taken = taken | chosen
    grad = jnp.where(chosen, output_grad, zero)
    # Output (i, j) reads input row 2i + di: parity di % 2, plane row i + di // 2.
    placed = lax.pad(grad, zero, ((0, 0, 0), (di // 2, plane_h - out_h - di // 2, 0),
                                  (dj // 2, plane_w - out_w - dj // 2, 0), (0, 0, 0)))
    p, q = di % 2, dj % 2
    planes[p][q] = placed if planes[p][q] is None else planes[p][q] + placed
  rows = [jnp.stack(planes[p], axis=3) for p in range(2)]        # [B, A, W', 2, C]
  grid = jnp.stack(rows, axis=2)                                  # [B, A, 2, W', 2, C]
  batch, channels = x.shape[0], x.shape[3]
  grid = grid.reshape(batch, 2 * plane_h, 2 * plane_w, channels)
  return (grid[:, :x.shape[1], :x.shape[2], :].astype(x.dtype),)


max_pool_3x3_stride2.defvjp(_forward, _backward)
