"""The frozen-trunk feature cache: keys, the disk cache, and batches drawn from it."""

import numpy as np

from artclf import scheme as scheme_lib
from artclf.data import feature_cache


def test_cache_key_changes_with_frozen_weights_and_description():
  weights = [np.ones((3, 3), np.float32)]
  key = feature_cache.cache_key({"views": [0, 1]}, weights)
  assert key == feature_cache.cache_key({"views": [0, 1]}, [np.ones((3, 3), np.float32)])
  assert key != feature_cache.cache_key({"views": [0]}, weights)
  changed = [np.ones((3, 3), np.float32)]
  changed[0][1, 1] = 1.0001
  assert key != feature_cache.cache_key({"views": [0, 1]}, changed)


def test_disk_cache_computes_once_then_loads(tmp_path):
  calls = []

  def compute():
    calls.append(1)
    return {"shared": np.arange(24, dtype=np.float16).reshape(2, 3, 4)}

  first = feature_cache.load_or_compute(tmp_path, "abc", compute)
  second = feature_cache.load_or_compute(tmp_path, "abc", compute)
  assert len(calls) == 1
  np.testing.assert_array_equal(first["shared"], second["shared"])
  feature_cache.load_or_compute(tmp_path, "other", compute)
  assert len(calls) == 2
  # Without a folder nothing is written and compute always runs.
  feature_cache.load_or_compute(None, "abc", compute)
  assert len(calls) == 3


def _cached(num_views=2, n=10):
  rng = np.random.default_rng(0)
  feats = {"shared": rng.normal(size=(num_views, n, 2, 2, 4)).astype(np.float16)}
  label_ids = {task: rng.integers(-1, 3, n).astype(np.int32) for task in scheme_lib.DEFAULT.tasks}
  return feats, label_ids


def test_cached_batches_are_a_function_of_the_step():
  feats, label_ids = _cached()
  a = feature_cache.CachedBatches(feats, label_ids, scheme_lib.DEFAULT, batch_size=4, seed=1)
  b = feature_cache.CachedBatches(feats, label_ids, scheme_lib.DEFAULT, batch_size=4, seed=1)
  assert a.steps_per_epoch == 2
  for step in (0, 1, 2, 5, 3):
    x, y = a.batch(step), b.batch(step)
    np.testing.assert_array_equal(x["features"]["shared"], y["features"]["shared"])
  # A different seed gives another order.
  c = feature_cache.CachedBatches(feats, label_ids, scheme_lib.DEFAULT, batch_size=4, seed=2)
  assert not np.array_equal(a.batch(0)["culture"], c.batch(0)["culture"]) or not np.array_equal(
      a.batch(0)["features"]["shared"], c.batch(0)["features"]["shared"])


def test_epochs_cycle_through_the_views_and_labels_follow_rows():
  feats, label_ids = _cached(num_views=2, n=8)
  batches = feature_cache.CachedBatches(feats, label_ids, scheme_lib.DEFAULT, batch_size=8, seed=0)
  for epoch in range(4):
    batch = batches.batch(epoch)  # one step per epoch
    view = epoch % 2
    for row in range(8):
      # Find the example each row came from: its features identify it within the view.
      match = [i for i in range(8)
               if np.array_equal(feats["shared"][view, i], batch["features"]["shared"][row])]
      assert len(match) == 1
      for task in scheme_lib.DEFAULT.tasks:
        assert batch[task][row] == label_ids[task][match[0]]


def test_hosts_get_disjoint_slices_of_the_global_batch():
  feats, label_ids = _cached(n=12)
  batches = feature_cache.CachedBatches(feats, label_ids, scheme_lib.DEFAULT, batch_size=6, seed=0)
  whole = batches.batch(3)["features"]["shared"]
  parts = [batches.batch(3, process_index=i, process_count=2)["features"]["shared"] for i in range(2)]
  assert sum(len(p) for p in parts) == 6
  np.testing.assert_array_equal(np.sort(np.concatenate(parts).ravel()), np.sort(whole.ravel()))
