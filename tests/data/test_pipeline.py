"""The grain pipeline: batches, determinism, per-epoch reshuffle, resumption, sharding, balance."""

import collections

import numpy as np
import pytest

from artclf import labels
from artclf.data import images, pipeline, tfds_builder, transforms
from tests.data.fixtures import build_synthetic

SIZE = 64  # Small views keep the tests fast; the pipeline is size-agnostic.
AUG = transforms.AugmentConfig(image_size=SIZE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return build_synthetic(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def train_source(data_dir):
  return tfds_builder.open_split(data_dir, "train")


def _config(**kwargs):
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("augmentation", AUG)
  return pipeline.PipelineConfig(**kwargs)


def _batches(source, n, train=True, shard=(0, 1), **kwargs):
  dataset = pipeline.make_dataset(source, train=train, config=_config(**kwargs),
                                  shard_index=shard[0], shard_count=shard[1])
  iterator = iter(dataset)
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_train_batch_shapes_dtypes_and_labels(train_source):
  batch = _batches(train_source, 1)[0]
  assert batch["image"].shape == (8, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
  for task in labels.TASKS:
    assert batch[task].shape == (8,) and batch[task].dtype == np.int32
    for i, index in enumerate(batch["index"]):
      assert batch[task][i] == train_source[int(index)][task]
  # Caffe-normalised: BGR minus the mean, so values span roughly [-124, 152].
  assert batch["image"].min() < -50 and batch["image"].max() > 50
  assert batch["image"].min() >= -123.68 - 1e-3 and batch["image"].max() <= 255 - 103.939 + 1e-3


def _caffe_denormalize(x):
  bgr = np.asarray(x, np.float32) + transforms.CAFFE_MEAN_BGR
  return np.clip(bgr[..., ::-1], 0, 255).round().astype(np.uint8)


def test_eval_is_unaugmented_in_source_order_and_keeps_the_last_batch(data_dir):
  source = tfds_builder.open_split(data_dir, "val")
  batches = list(pipeline.make_dataset(source, train=False, config=_config(seed=1),
                                       shard_index=0, shard_count=1))
  assert [len(b["index"]) for b in batches] == [8, 2]
  indices = np.concatenate([b["index"] for b in batches])
  np.testing.assert_array_equal(indices, np.arange(len(source)))
  for batch in batches:
    for image, index in zip(batch["image"], batch["index"]):
      data = source[int(index)]["image"]
      # JPEG draft decoding to >= the resize size, then resize and centre crop.
      drafted = images.decode_image(data, draft_size=AUG.eval_resize_size)
      expected = transforms.caffe_normalize(transforms.eval_view(drafted, AUG))
      np.testing.assert_allclose(image, expected, atol=1e-4)
      # ... which is within a grey level or two of decoding at full size.
      full = transforms.eval_view(images.decode_image(data), AUG)
      assert np.abs(_caffe_denormalize(image).astype(int) - full).mean() < 2
  # No randomness in evaluation: another seed gives identical batches.
  other = list(pipeline.make_dataset(source, train=False, config=_config(seed=7),
                                     shard_index=0, shard_count=1))
  for a, b in zip(batches, other):
    _assert_batches_equal(a, b)


def test_same_seed_same_batches_different_seed_different(train_source):
  first = _batches(train_source, 2, seed=3)
  again = _batches(train_source, 2, seed=3)
  for a, b in zip(first, again):
    _assert_batches_equal(a, b)
  other = _batches(train_source, 2, seed=4)
  assert not np.array_equal(first[0]["index"], other[0]["index"])
  assert not np.allclose(first[0]["image"], other[0]["image"])


def test_each_epoch_is_a_fresh_permutation(train_source):
  n = len(train_source)  # 24 = 3 batches of 8.
  batches = _batches(train_source, 6, num_epochs=2)
  order = np.concatenate([b["index"] for b in batches])
  epoch0, epoch1 = order[:n], order[n:]
  assert sorted(epoch0) == list(range(n)) and sorted(epoch1) == list(range(n))
  assert not np.array_equal(epoch0, epoch1)
  # A record's second view is a different augmentation of it.
  position0, position1 = list(epoch0).index(5), list(epoch1).index(5)
  image0 = np.concatenate([b["image"] for b in batches[:3]])[position0]
  image1 = np.concatenate([b["image"] for b in batches[3:]])[position1]
  assert not np.allclose(image0, image1)


def test_pipeline_images_equal_preprocess_example(train_source):
  n = len(train_source)
  batches = _batches(train_source, 4, seed=11)  # Batch 3 is in epoch 1.
  for b, batch in enumerate(batches):
    for i in (0, 7):
      epoch = (b * 8 + i) // n
      index = int(batch["index"][i])
      expected = transforms.preprocess_example(train_source[index]["image"], train=True,
                                            config=AUG, seed=11, epoch=epoch, index=index)
      np.testing.assert_array_equal(batch["image"][i], expected)


def test_checkpoint_mid_epoch_resumes_with_the_next_batch(train_source):
  dataset = pipeline.make_dataset(train_source, train=True, config=_config(seed=5),
                                  shard_index=0, shard_count=1)
  iterator = iter(dataset)
  for _ in range(2):
    next(iterator)
  state = iterator.get_state()
  expected = [next(iterator) for _ in range(3)]  # Crosses into epoch 1.
  resumed = iter(pipeline.make_dataset(train_source, train=True, config=_config(seed=5),
                                       shard_index=0, shard_count=1))
  resumed.set_state(state)
  for a in expected:
    _assert_batches_equal(a, next(resumed))


def test_worker_processes_give_the_same_batches_and_resume(train_source):
  in_process = _batches(train_source, 4, seed=2)
  dataset = pipeline.make_dataset(train_source, train=True, config=_config(seed=2, worker_count=2),
                                  shard_index=0, shard_count=1)
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


def test_shards_are_disjoint_and_cover_the_split(data_dir, train_source):
  seen = []
  for shard in range(3):
    batches = _batches(train_source, 1, shard=(shard, 3), batch_size=8, num_epochs=1)
    seen.append(set(batches[0]["index"].tolist()))
  assert all(len(s) == 8 for s in seen)
  assert set.union(*seen) == set(range(24)) and sum(map(len, seen)) == 24
  source = tfds_builder.open_split(data_dir, "val")  # 10 records over 3 hosts: 4, 3, 3.
  sizes = [sum(len(b["index"]) for b in pipeline.make_dataset(
      source, train=False, config=_config(), shard_index=s, shard_count=3)) for s in range(3)]
  assert sizes == [4, 3, 3]
  with pytest.raises(ValueError, match="shard_index 3 not in"):
    pipeline.make_dataset(source, train=False, config=_config(), shard_index=3, shard_count=3)


def test_padded_eval_gives_every_shard_the_same_full_batches(data_dir):
  source = tfds_builder.open_split(data_dir, "val")  # 10 records: 4, 3, 3 per shard.
  real = []
  for shard in range(3):
    config = _config(batch_size=3, pad_eval=True)
    batches = list(pipeline.make_dataset(source, train=False, config=config,
                                         shard_index=shard, shard_count=3))
    assert [len(b["index"]) for b in batches] == [3, 3]  # ceil(10 / 3) = 4 -> 2 batches of 3.
    index = np.concatenate([b["index"] for b in batches])
    padding = index == pipeline.PAD_INDEX
    assert padding.sum() == 6 - len(range(shard, 10, 3))
    for task in labels.TASKS:
      assert (np.concatenate([b[task] for b in batches])[padding] == labels.UNKNOWN).all()
    real.extend(index[~padding].tolist())
  assert sorted(real) == list(range(10))


def test_shard_defaults_come_from_jax(train_source):
  dataset = pipeline.make_dataset(train_source, train=True, config=_config(num_epochs=1))
  indices = np.concatenate([b["index"] for b in dataset])
  assert sorted(indices) == list(range(24))  # One process: the one shard is everything.


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
