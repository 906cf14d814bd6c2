"""The one inference loop: row blocks, padding, buckets, and rows back in order."""

import jax
import jax.numpy as jnp
import numpy as np

from artclf import mesh as mesh_lib
from artclf.data import images, tfds_builder, transforms
from artclf import inference
from tests.data.fixtures import build_synthetic


def test_row_blocks_deal_each_global_batch_out_in_host_order():
  # 10 rows, 2 hosts of 3: global batches [0..5], [6..11] -> host 0 [0,1,2], [6,7,8].
  host0 = inference.local_row_blocks(10, 3, 0, 2)
  host1 = inference.local_row_blocks(10, 3, 1, 2)
  np.testing.assert_array_equal(host0, [[0, 1, 2], [6, 7, 8]])
  np.testing.assert_array_equal(host1, [[3, 4, 5], [9, -1, -1]])
  assert inference.local_row_blocks(0, 4).shape == (1, 4)  # one (empty) step all the same


def test_bucket_sizes_are_powers_of_two_that_split_over_the_devices():
  assert [inference.bucket_size(n, 16, 1) for n in (1, 2, 3, 5, 9, 16)] == [1, 2, 4, 8, 16, 16]
  assert [inference.bucket_size(n, 16, 4) for n in (1, 3, 5)] == [4, 4, 8]


def test_forward_rows_returns_every_row_once_in_order():
  mesh = mesh_lib.make_mesh()
  apply = jax.jit(lambda inputs: {"double": inputs["x"] * 2, "sum": jnp.sum(inputs["x"], -1)})
  data = np.arange(22 * 3, dtype=np.float32).reshape(22, 3)
  seen = []

  def load_rows(rows):
    seen.extend(rows.tolist())
    return {"x": data[rows]}

  out = inference.forward_rows(apply, load_rows, len(data), 8, mesh)
  np.testing.assert_array_equal(out["double"], data * 2)
  np.testing.assert_array_equal(out["sum"], data.sum(-1))
  assert sorted(seen) == list(range(22))  # padding rows are never loaded


def test_iter_forward_cuts_padding_off_and_buckets_small_batches():
  mesh = mesh_lib.make_mesh()
  shapes = []

  def apply(inputs):
    shapes.append(inputs["x"].shape[0])
    return {"y": inputs["x"] + 1}

  batches = [({"x": np.zeros((3, 2), np.float32)}, 3), ({"x": np.zeros((1, 2), np.float32)}, 1)]
  outs = list(inference.iter_forward(apply, batches, mesh, 16, bucketed=True))
  assert [o["y"].shape[0] for o in outs] == [3, 1]
  assert shapes == [4, 1]


def test_the_evaluation_view_of_a_file_is_drafted_then_resized_and_cropped(tmp_path):
  data_dir = build_synthetic(tmp_path, num_train=4, num_val=4)
  source = tfds_builder.open_split(data_dir, "val")
  config = transforms.AugmentConfig(image_size=48)
  for record in source:
    data = record["image"]
    view = transforms.eval_view(data, config)
    drafted = images.decode_image(data, draft_size=config.eval_resize_size)
    np.testing.assert_array_equal(view, transforms.eval_view(drafted, config))
    # ... which is within a grey level or two of decoding at full size.
    full = transforms.eval_view(images.decode_image(data), config)
    assert np.abs(view.astype(int) - full).mean() < 2


def test_a_host_with_only_padding_left_loads_a_stand_in_row_counted_as_none():
  # Host 1 of 2, 20 rows, local batches of 8: step 2 deals it rows 24-31, all padding;
  # loaders that stack their rows (np.stack of nothing fails) must still be called with some.
  blocks = inference.local_row_blocks(20, 8, 1, 2)
  assert (blocks[1] == inference.PAD_ROW).all()
  loaded = []

  def load_rows(rows):
    loaded.append(rows.tolist())
    return {"x": np.stack([np.full(2, r, np.float32) for r in rows])}

  counts = [count for _, count in inference._prefetched(load_rows, blocks, threads=0)]
  assert counts == [8, 0] and loaded == [list(range(8, 16)), [0]]
