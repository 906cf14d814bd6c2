"""The grain pipeline: batches, determinism, per-epoch reshuffle, resumption, hosts, balance."""

import collections

import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.data import dataset as dataset_lib
from artclf.data import pipeline, transforms
from tests.data.fixtures import build_synthetic

SCHEME = scheme_lib.DEFAULT
SIZE = 64  # Small views keep the tests fast; the pipeline is size-agnostic.
AUG = transforms.AugmentConfig(image_size=SIZE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return build_synthetic(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def train_source(data_dir):
  return dataset_lib.open_labelled(data_dir, "train", SCHEME)


def _config(**kwargs):
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("augmentation", AUG)
  return pipeline.PipelineConfig(**kwargs)


def _batches(source, n, hosts=(0, 1), **kwargs):
  dataset = pipeline.make_dataset(source, SCHEME, _config(**kwargs), process_index=hosts[0],
                                  process_count=hosts[1])
  iterator = iter(dataset)
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_train_batch_shapes_dtypes_and_labels(train_source):
  batch = _batches(train_source, 1)[0]
  assert batch["image"].shape == (8, SIZE, SIZE, 3) and batch["image"].dtype == np.uint8
  for task in scheme_lib.DEFAULT.tasks:
    assert batch[task].shape == (8,) and batch[task].dtype == np.int32
    for i, index in enumerate(batch["index"]):
      assert batch[task][i] == train_source.labels[task][int(index)]
  # RGB pixels: the network makes its own input from them.
  assert batch["image"].min() < 50 and batch["image"].max() > 200


def test_same_seed_same_batches_different_seed_different(train_source):
  first = _batches(train_source, 2, seed=3)
  again = _batches(train_source, 2, seed=3)
  for a, b in zip(first, again):
    _assert_batches_equal(a, b)
  other = _batches(train_source, 2, seed=4)
  assert not np.array_equal(first[0]["index"], other[0]["index"])
  assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_each_epoch_is_a_fresh_permutation(train_source):
  n = len(train_source)  # 24 = 3 batches of 8.
  batches = _batches(train_source, 6)
  order = np.concatenate([b["index"] for b in batches])
  epoch0, epoch1 = order[:n], order[n:]
  assert sorted(epoch0) == list(range(n)) and sorted(epoch1) == list(range(n))
  assert not np.array_equal(epoch0, epoch1)
  # A record's second view is a different augmentation of it.
  position0, position1 = list(epoch0).index(5), list(epoch1).index(5)
  image0 = np.concatenate([b["image"] for b in batches[:3]])[position0]
  image1 = np.concatenate([b["image"] for b in batches[3:]])[position1]
  assert not np.array_equal(image0, image1)


def test_pipeline_images_equal_preprocess_example(train_source):
  n = len(train_source)
  batches = _batches(train_source, 4, seed=11)  # Batch 3 is in epoch 1.
  for b, batch in enumerate(batches):
    for i in (0, 7):
      epoch = (b * 8 + i) // n
      index = int(batch["index"][i])
      expected = transforms.preprocess_example(train_source.source[index]["image"], train=True,
                                               config=AUG, seed=11, epoch=epoch, index=index,
                                               normalize=False)
      np.testing.assert_array_equal(batch["image"][i], expected)


def test_checkpoint_mid_epoch_resumes_with_the_next_batch(train_source):
  dataset = pipeline.make_dataset(train_source, SCHEME, _config(seed=5))
  iterator = iter(dataset)
  for _ in range(2):
    next(iterator)
  state = iterator.get_state()
  expected = [next(iterator) for _ in range(3)]  # Crosses into epoch 1.
  resumed = iter(pipeline.make_dataset(train_source, SCHEME, _config(seed=5)))
  resumed.set_state(state)
  for a in expected:
    _assert_batches_equal(a, next(resumed))


def test_worker_processes_give_the_same_batches_and_resume(train_source):
  in_process = _batches(train_source, 4, seed=2)
  dataset = pipeline.make_dataset(train_source, SCHEME, _config(seed=2, worker_count=2))
  iterator = iter(dataset)
  try:
    for a in in_process[:2]:
      _assert_batches_equal(a, next(iterator))
    state = iterator.get_state()
  finally:
    iterator.close()
  resumed = iter(dataset)
  try:
    resumed.set_state(state)
    for a in in_process[2:]:
      _assert_batches_equal(a, next(resumed))
  finally:
    resumed.close()


def test_hosts_hold_consecutive_blocks_of_the_one_host_batches(train_source):
  """Two hosts train on the same global batches as one: host h holds block h of each."""
  whole = _batches(train_source, 5, seed=3, batch_size=8)
  parts = [_batches(train_source, 5, hosts=(h, 2), seed=3, batch_size=8) for h in range(2)]
  for step, batch in enumerate(whole):
    joined = {k: np.concatenate([parts[0][step][k], parts[1][step][k]]) for k in batch}
    _assert_batches_equal(batch, joined)
  with pytest.raises(ValueError, match="process_index 2 not in"):
    pipeline.make_dataset(train_source, SCHEME, _config(), process_index=2, process_count=2)
  with pytest.raises(ValueError, match="not a multiple of the 3 hosts"):
    pipeline.make_dataset(train_source, SCHEME, _config(), process_index=0, process_count=3)


def test_host_defaults_come_from_jax(train_source):
  dataset = iter(pipeline.make_dataset(train_source, SCHEME, _config()))
  indices = np.concatenate([next(dataset)["index"] for _ in range(3)])
  assert sorted(indices) == list(range(24))  # one process: each epoch is everything


def test_culture_balanced_sampling_evens_out_cultures(train_source):
  plain = _batches(train_source, 30, seed=0, sampling="uniform")
  balanced = _batches(train_source, 30, seed=0, sampling="culture")
  def culture_share(batches):
    cultures = np.concatenate([b["culture"] for b in batches])
    counts = collections.Counter(cultures[cultures >= 0].tolist())
    return np.array([counts[c] for c in range(3)]) / sum(counts.values())
  # The synthetic train split is 60% egyptian, 20% greek, 10% roman (10% unknown).
  assert culture_share(plain)[0] > 0.6
  np.testing.assert_allclose(culture_share(balanced), [1 / 3] * 3, atol=0.08)
  # Sampling is with replacement but still deterministic and resumable per seed.
  again = _batches(train_source, 2, seed=0, sampling="culture")
  _assert_batches_equal(balanced[1], again[1])


def test_a_cap_on_the_sampling_weights_limits_the_rarest_class(train_source):
  def roman_share(max_weight):
    batches = _batches(train_source, 30, seed=0, sampling="culture", sampling_max_weight=max_weight)
    cultures = np.concatenate([b["culture"] for b in batches])
    return np.mean(cultures[cultures >= 0] == 2)
  # Uncapped, the 2 roman records of 24 are drawn about a third of the time; capping the
  # class weights at 1.2 times their mean draws them about half as often.
  uncapped, capped = roman_share(None), roman_share(1.2)
  assert uncapped > 0.25
  assert capped < uncapped - 0.08
