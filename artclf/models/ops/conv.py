"""Convolutions with backward passes that XLA:CPU runs fast (see bench/README.md).

Three pieces: `conv_general_dilated`, the `nnx.Conv` hook whose 1x1 case has a
matrix-product backward pass and whose depthwise case is a sum of shifted products
(`depthwise_conv_nhwc`), and `conv_frozen_batch_norm`, a convolution and the BatchNorm
after it on moving statistics, fused (further below).

Differentiating `lax.conv_general_dilated` gives XLA a kernel gradient that is itself a
convolution, with a window as large as the feature map (e.g. 56x56) and the batch as its
feature dimension. For 1x1 kernels that is a plain matrix product, but XLA:CPU runs the
convolution form 2-9x slower than the product (bench/README.md). Here a 1x1 convolution
keeps the usual forward pass, and its backward pass is:
  * kernel gradient: [C_in, B*H*W] x [B*H*W, C_out] over the strided input pixels;
  * input gradient: [B*H'*W', C_out] x [C_out, C_in], scattered back to the strided
    positions (zeros where the stride skipped pixels).
Larger kernels (3x3, the 7x7 stem) go to `lax.conv_general_dilated` unchanged: there the
per-tap matrix products measured slower than XLA's own convolution gradients.
Results equal lax's gradients up to float rounding (tests/test_conv.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def _strided_pixels(inputs, strides):
  return inputs[:, ::strides[0], ::strides[1], :]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def pointwise_conv_nhwc(inputs, kernel, strides: tuple[int, int]):
  """1x1 'VALID' convolution of NHWC inputs with an HWIO kernel [1, 1, C_in, C_out]."""
  pixels = _strided_pixels(inputs, strides)
  # A matrix product over the pixel rows, as the backward pass reads them: the input is then
  # one [B*H*W, C_in] buffer for both, instead of XLA recomputing it for each.
  outputs = jnp.dot(pixels.reshape(-1, inputs.shape[-1]), kernel[0, 0])
  return outputs.reshape(pixels.shape[:3] + (kernel.shape[-1],))


def _pointwise_forward(inputs, kernel, strides):
  return pointwise_conv_nhwc(inputs, kernel, strides), (inputs, kernel)


def _pointwise_backward(strides, residuals, output_grad):
  inputs, kernel = residuals
  in_features, out_features = kernel.shape[2:]
  pixels = _strided_pixels(inputs, strides).reshape(-1, in_features)
  kernel_grad = lax.dot_general(pixels, output_grad.reshape(-1, out_features),
                                (((0,), (0,)), ((), ())))
  grad_at_pixels = jnp.dot(output_grad, kernel[0, 0].T)
  padding = [(0, 0, 0)]
  for axis, stride in ((1, strides[0]), (2, strides[1])):
    covered = (grad_at_pixels.shape[axis] - 1) * stride + 1
    padding.append((0, inputs.shape[axis] - covered, stride - 1))
  padding.append((0, 0, 0))
  input_grad = lax.pad(grad_at_pixels, jnp.zeros((), grad_at_pixels.dtype), padding)
  return input_grad.astype(inputs.dtype), kernel_grad.reshape(kernel.shape).astype(kernel.dtype)


pointwise_conv_nhwc.defvjp(_pointwise_forward, _pointwise_backward)


def _is_pointwise_nhwc(inputs, kernel, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                       feature_group_count, kwargs) -> bool:
  if inputs.ndim != 4 or kernel.shape[:2] != (1, 1) or feature_group_count != 1 or kwargs:
    return False
  if any(d != 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ())):
    return False
  if not (padding == "VALID" or padding == "SAME"
          or (not isinstance(padding, str) and all(tuple(p) == (0, 0) for p in padding))):
    return False
  return (lax.conv_dimension_numbers(inputs.shape, kernel.shape, dimension_numbers)
          == lax.conv_dimension_numbers(inputs.shape, kernel.shape, _NHWC))


def _is_depthwise_nhwc(inputs, kernel, lhs_dilation, rhs_dilation, dimension_numbers,
                       feature_group_count, kwargs) -> bool:
  if inputs.ndim != 4 or kwargs or kernel.shape[2] != 1:
    return False
  if feature_group_count != inputs.shape[-1] or kernel.shape[3] != inputs.shape[-1]:
    return False
  if any(d != 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ())):
    return False
  return (lax.conv_dimension_numbers(inputs.shape, kernel.shape, dimension_numbers)
          == lax.conv_dimension_numbers(inputs.shape, kernel.shape, _NHWC))


def depthwise_conv_nhwc(inputs, kernel, strides: tuple[int, int], padding):
  """Depthwise convolution (HWIO kernel [kh, kw, 1, C]) as a sum of shifted products.

  XLA:CPU runs grouped convolutions 5-30x slower than these kh * kw fused multiply-adds
  of strided slices (an EfficientNet-Lite layer: 595 ms against 115 ms); the results
  agree up to float rounding, and autodiff of slices and products is cheap too.
  """
  kh, kw = kernel.shape[:2]
  height, width = inputs.shape[1:3]
  if isinstance(padding, str):
    padding = lax.padtype_to_pads((height, width), (kh, kw), strides, padding)
  (top, bottom), (left, right) = padding
  padded = jnp.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
  out_h = (height + top + bottom - kh) // strides[0] + 1
  out_w = (width + left + right - kw) // strides[1] + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(padded, (0, i, j, 0),
                         (padded.shape[0], i + (out_h - 1) * strides[0] + 1,
                          j + (out_w - 1) * strides[1] + 1, padded.shape[3]),
                         (1, strides[0], strides[1], 1))
      term = window * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


def conv_general_dilated(inputs, kernel, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """Drop-in for `lax.conv_general_dilated` (the `nnx.Conv(conv_general_dilated=...)` hook)."""
  kwargs = {k: v for k, v in kwargs.items() if v is not None}
  if precision is None and _is_pointwise_nhwc(inputs, kernel, padding, lhs_dilation,
                                              rhs_dilation, dimension_numbers,
                                              feature_group_count, kwargs):
    # A 1x1 kernel needs no padding, even for 'SAME'.
    return pointwise_conv_nhwc(inputs, kernel, tuple(int(s) for s in window_strides))
  if precision is None and _is_depthwise_nhwc(inputs, kernel, lhs_dilation, rhs_dilation,
                                              dimension_numbers, feature_group_count, kwargs):
    return depthwise_conv_nhwc(inputs, kernel, tuple(int(s) for s in window_strides), padding)
  return lax.conv_general_dilated(
      inputs, kernel, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision, **kwargs)


# --- Convolution followed by a BatchNorm on its moving statistics -----------------------
#
# With frozen statistics a BatchNorm is a per-channel affine map, y = z * a + shift, with
# a = scale / sqrt(var + eps) and shift = (conv_bias - mean) * a + bias. Left to autodiff,
# conv bias, BN scale and BN bias each get their own reduction over the whole feature map,
# and XLA:CPU's reductions over the leading axes run at a fraction of memory bandwidth: they
# were a fifth of the ResNet50 train step (bench/README.md). Here the backward pass needs
# one reduction per layer, sum(gy), because the other follows from the kernel gradient:
#   sum_pixels gy * conv(x, W)  =  sum_taps W * (patches^T gy)  =  sum_taps W * dW'
# where dW' = patches^T gy is the kernel gradient taken against gy itself. The input
# gradient uses the kernel pre-scaled by a, so no feature-map-sized product is formed.
# An optional ReLU is fused too: its gradient mask then comes from the layer's output,
# which the next layer keeps anyway, instead of a saved pre-activation.


def _frozen_bn_factors(conv_bias, scale, bias, mean, var, epsilon):
  inv_std = lax.rsqrt(var + epsilon)
  a = scale * inv_std
  return inv_std, a, (conv_bias - mean) * a + bias


def _scaled_kernel(kernel, a, dtype):
  # Scaled in f32 and only then cast, so bf16 compute rounds the product once.
  return (kernel.astype(jnp.float32) * a).astype(dtype)


def _conv(inputs, kernel, strides, padding):
  return conv_general_dilated(inputs, kernel, strides, padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10))
def conv_frozen_batch_norm(inputs, kernel, conv_bias, scale, bias, mean, var,
                           strides: tuple[int, int], padding, epsilon: float, relu: bool = False):
  """BatchNorm(moving statistics)(conv(inputs, kernel) + conv_bias), then ReLU if `relu`.

  NHWC inputs, HWIO kernel.

  Equal to the unfused layers up to float rounding, values and gradients alike
  (tests/test_conv.py); `mean` and `var` get zero gradients (they are statistics).
  """
  _, a, shift = _frozen_bn_factors(conv_bias, scale, bias, mean, var, epsilon)
  # Scale whichever is smaller: the kernel (training batches), or the output (small
  # inference batches, where rescaling all 25M ResNet50 weights per call would cost more
  # than the convolutions of the late stages).
  output_pixels = inputs.shape[0] * inputs.shape[1] * inputs.shape[2] // (strides[0] * strides[1])
  if output_pixels < kernel.shape[0] * kernel.shape[1] * kernel.shape[2]:
    outputs = (_conv(inputs, kernel.astype(inputs.dtype), strides, padding) * a.astype(inputs.dtype)
               + shift.astype(inputs.dtype))
  else:
    outputs = (_conv(inputs, _scaled_kernel(kernel, a, inputs.dtype), strides, padding)
               + shift.astype(inputs.dtype))
  return jnp.maximum(outputs, 0) if relu else outputs


def _conv_bn_forward(inputs, kernel, conv_bias, scale, bias, mean, var, strides, padding,
                     epsilon, relu):
  outputs = conv_frozen_batch_norm(inputs, kernel, conv_bias, scale, bias, mean, var, strides,
                                   padding, epsilon, relu)
  return outputs, (inputs, kernel, conv_bias, scale, bias, mean, var, outputs if relu else None)


def _conv_bn_backward(strides, padding, epsilon, relu, residuals, output_grad):
  inputs, kernel, conv_bias, scale, bias, mean, var, outputs = residuals
  if relu:
    output_grad = jnp.where(outputs > 0, output_grad, jnp.zeros((), output_grad.dtype))
  inv_std, a, _ = _frozen_bn_factors(conv_bias, scale, bias, mean, var, epsilon)
  scaled_kernel = _scaled_kernel(kernel, a, inputs.dtype)
  # (input gradient through the scaled kernel, kernel gradient against gy itself)
  _, conv_vjp = jax.vjp(lambda x, w: _conv(x, w, strides, padding), inputs, scaled_kernel)
  input_grad, raw_kernel_grad = conv_vjp(output_grad)
  channels = output_grad.shape[-1]
  rows = output_grad.reshape(-1, channels)
  # A matrix-vector product: XLA:CPU runs it ~2x faster than the equivalent reduce.
  grad_sum = lax.dot_general(jnp.ones((rows.shape[0],), rows.dtype), rows,
                             (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  raw_kernel_grad = raw_kernel_grad.astype(jnp.float32)
  grad_dot_conv = jnp.sum(raw_kernel_grad * kernel.astype(jnp.float32), axis=(0, 1, 2))
  kernel_grad = raw_kernel_grad * a
  scale_grad = inv_std * (grad_dot_conv + (conv_bias - mean) * grad_sum)
  return (input_grad, kernel_grad.astype(kernel.dtype), (a * grad_sum).astype(conv_bias.dtype),
          scale_grad.astype(scale.dtype), grad_sum.astype(bias.dtype), jnp.zeros_like(mean),
          jnp.zeros_like(var))


conv_frozen_batch_norm.defvjp(_conv_bn_forward, _conv_bn_backward)
