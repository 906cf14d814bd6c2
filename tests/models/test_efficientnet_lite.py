"""The EfficientNet-Lite trunks: TF's sizes and counts, stage slicing, the folded BatchNorm,
which parameters `last:N` trains, bfloat16 compute, the input scaling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from artclf.models import efficientnet_lite as lite
from artclf.train import optimizer


def _count(state) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


@pytest.mark.parametrize("spec, total, params, trunk_params", [
    # `total` equals the float count of the wheels' .pth files (BN statistics included);
    # `params` is TF's 4.7 M and 6.1 M.
    (lite.LITE0, 4_694_024, 4_652_008, 3_371_008),
    (lite.LITE2, 6_150_168, 6_092_072, 4_811_072),
])
def test_parameter_counts(spec, total, params, trunk_params):
  classifier = nnx.eval_shape(lambda: lite.ImageNetLiteClassifier(spec, rngs=nnx.Rngs(0)))
  assert _count(nnx.state(classifier)) == total
  assert _count(nnx.state(classifier, nnx.Param)) == params
  assert _count(nnx.state(classifier.trunk, nnx.Param)) == trunk_params


def test_lite_scaling_rules():
  # Lite2 = width 1.1, depth 1.2; first and last groups keep one block; stem and head fixed.
  groups = lite.LITE2.block_groups()
  assert [g.repeats for g in groups] == [1, 3, 3, 4, 4, 5, 1]
  assert [g.out_features for g in groups] == [16, 24, 48, 88, 120, 208, 352]
  assert groups[0].in_features == lite.LITE2.stem_features == 32
  assert lite.LITE2.num_features == 1280
  assert [g.repeats for g in lite.LITE0.block_groups()] == [1, 2, 2, 3, 3, 4, 1]
  assert [g.out_features for g in lite.LITE0.block_groups()] == [16, 24, 40, 80, 112, 192, 320]
  # round_filters: to a multiple of 8, bumped up when rounding loses more than 10%.
  assert lite.round_features(40, 1.1) == 48
  assert lite.round_features(112, 1.1) == 120
  assert lite.round_features(16, 0.25) == 8
  assert lite.round_features(11, 1.0) == 16  # 8 would lose 27%.


def test_stage_layout_and_lookup():
  trunk = nnx.eval_shape(lambda: lite.EfficientNetLiteTrunk(lite.LITE0, rngs=nnx.Rngs(0)))
  assert trunk.num_stages == 9
  assert [len(stage) for stage in trunk.stages] == [1, 2, 2, 3, 3, 4, 1, 1]
  assert isinstance(trunk.stages[-1][0], lite.HeadConv)
  first_of_group_3 = trunk.stages[2][0]
  assert first_of_group_3.depthwise_conv.kernel.shape == (5, 5, 1, 144)
  assert trunk.stages[0][0].expand_conv is None  # Expansion ratio 1.
  assert lite.lite_spec("efficientnet_lite2") is lite.LITE2
  with pytest.raises(ValueError, match="unknown EfficientNet-Lite trunk 'efficientnet_b0'"):
    lite.lite_spec("efficientnet_b0")


def _tiny_trunk(dtype=None, seed=0):
  """The tiny trunk with random kernels and non-trivial BN statistics, so folding errors show.

  Filled from numpy rather than initialised by JAX: eager initialisation compiles every
  initializer op once, which costs far more than the test itself on a shared CPU.
  """
  trunk = nnx.eval_shape(
      lambda: lite.EfficientNetLiteTrunk(lite.TINY_LITE, dtype=dtype, rngs=nnx.Rngs(0)))
  rng = np.random.default_rng(seed)
  for path, variable in nnx.to_flat_state(nnx.state(trunk)):
    shape = variable.get_value().shape
    if path[-1] == "kernel":
      value = rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape)
    elif path[-1] in ("scale", "var"):
      value = rng.uniform(0.5, 2, shape)
    else:  # BN bias and mean.
      value = rng.normal(0, 0.3, shape)
    variable.set_value(jnp.asarray(value, jnp.float32))
  return trunk


def _images(size=32, batch=2, seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(batch, size, size, 3)), jnp.float32)


def test_downsamples_by_32_with_tf_same_padding():
  trunk = _tiny_trunk()
  features = lite.TINY_LITE.num_features

  def output_shape(size):
    return jax.eval_shape(trunk, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)).shape

  assert output_shape(64) == (1, 2, 2, features)
  # 260 px (Lite2's size): TF SAME gives ceil(260 / 32) = 9, not 8.
  assert output_shape(260) == (1, 9, 9, features)


def test_stem_padding_is_tf_same():
  """A stride-2 3x3 'SAME' conv on an even input pads 0 on top/left and 1 on bottom/right."""
  trunk = _tiny_trunk()
  x = _images(8, batch=1)
  kernel = trunk.stem_conv.kernel[...]
  explicit = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((0, 1), (0, 1)),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(trunk.stem_conv(x), explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_running_average", [True, False])
def test_running_stages_in_two_slices_equals_the_full_forward(use_running_average):
  trunk = _tiny_trunk()
  images = _images()
  # Eager: the slices reuse the full forward's compiled ops, where jit compiles each slice.
  full = trunk(images, use_running_average=use_running_average)
  for split in range(1, trunk.num_stages):
    lower = trunk(images, use_running_average, end_stage=split)
    upper = trunk(lower, use_running_average, start_stage=split)
    np.testing.assert_allclose(upper, full, rtol=1e-5, atol=1e-5, err_msg=f"split at {split}")
  assert trunk(images, end_stage=0) is images


def test_folded_batch_norm_matches_the_plain_flax_layers(monkeypatch):
  """On moving statistics (BN folded into the kernels) the trunk equals
  nnx.Conv -> nnx.BatchNorm -> ReLU6, in values and parameter gradients."""
  trunk = _tiny_trunk()
  images = _images()

  def loss(params, rest, graphdef):
    return jnp.sum(jnp.sin(nnx.merge(graphdef, params, rest)(images, use_running_average=True)))

  def value_and_grads():
    graphdef, params, rest = nnx.split(trunk, nnx.Param, ...)
    return jax.jit(jax.value_and_grad(loss), static_argnums=2)(params, rest, graphdef)

  folded_value, folded_grads = value_and_grads()

  def plain_conv_batch_norm(conv_layer, bn_layer, x, use_running_average, relu6=False):
    y = bn_layer(conv_layer(x), use_running_average=use_running_average)
    return jnp.clip(y, 0, 6) if relu6 else y

  monkeypatch.setattr(lite, "_conv_batch_norm", plain_conv_batch_norm)
  plain_value, plain_grads = value_and_grads()
  np.testing.assert_allclose(folded_value, plain_value, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3),
               folded_grads, plain_grads)


def test_bfloat16_compute_stays_close_to_float32():
  trunk32 = _tiny_trunk()
  trunk16 = _tiny_trunk(dtype=jnp.bfloat16)  # The same values (same seed).
  images = _images()
  out32, out16 = nnx.jit(trunk32)(images), nnx.jit(trunk16)(images)
  assert out16.dtype == jnp.bfloat16
  assert nnx.state(trunk16, nnx.Param)["stem_conv"]["kernel"][...].dtype == jnp.float32
  np.testing.assert_allclose(out16.astype(jnp.float32), out32, atol=0.1 * float(jnp.abs(out32).max()))


def _trunk_stage_of(path) -> int:
  """The stage of a trunk parameter, read from its path the way the modules are laid out."""
  return path[path.index("stages") + 1] + 1 if "stages" in path else 0


@pytest.mark.parametrize("trainable, first", [("heads", 9), ("last:1", 8), ("last:2", 7),
                                              ("last:9", 0), ("all", 0)])
def test_trainable_filter_selects_the_last_stages(trainable, first):
  classifier = nnx.eval_shape(lambda: lite.ImageNetLiteClassifier(lite.TINY_LITE, rngs=nnx.Rngs(0)))
  is_trainable = optimizer.trainable_filter(trainable, classifier.trunk.num_stages)
  chosen = nnx.to_flat_state(nnx.state(classifier, nnx.All(nnx.Param, is_trainable)))
  chosen_paths = {path for path, _ in chosen}
  all_paths = {path for path, _ in nnx.to_flat_state(nnx.state(classifier, nnx.Param))}
  expected = {p for p in all_paths if p[0] != "trunk" or _trunk_stage_of(p) >= first}
  assert chosen_paths == expected
  assert ("fc", "kernel") in chosen_paths  # The head always trains.
  head_conv = ("trunk", "stages", 7, 0, "conv", "kernel")
  assert (head_conv in chosen_paths) == (first <= 8)
  assert (("trunk", "stem_conv", "kernel") in chosen_paths) == (first == 0)


def test_normalize_input():
  pixels = np.array([[0, 127, 255]], np.uint8)
  np.testing.assert_allclose(lite.normalize_input(pixels), [[-127 / 128, 0.0, 1.0]])
  assert lite.normalize_input(pixels).dtype == jnp.float32
