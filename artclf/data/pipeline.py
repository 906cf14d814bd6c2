"""The grain input pipeline: a TFDS `ancient_art` split -> batches for training or evaluation.

  source = tfds_builder.open_split(data_dir, "train")
  dataset = pipeline.make_dataset(source, train=True, config=PipelineConfig(batch_size=32))
  iterator = iter(dataset)
  batch = next(iterator)  # {'image': f32 [B, S, S, 3], 'culture': i32 [B], ..., 'index': i64 [B]}
  state = iterator.get_state()   # save with the model checkpoint ...
  iterator.set_state(state)      # ... and the resumed run continues with the next batch.

Batches: `image` is caffe-normalised float32 (BGR minus the ImageNet mean, see
`artclf.data.transforms`), `culture`/`medium`/`period` int32 class ids with
UNKNOWN = -1, `index` the record's position in the split source (-1 for the
filler examples of `pad_eval`).

How the order is made (all deterministic given `seed`):
* sharding first: host `shard_index` of `shard_count` (default
  jax.process_index() / jax.process_count()) gets records
  shard_index, shard_index + shard_count, ...; disjoint across hosts. In
  training every shard is cut to the same length, so all hosts run the same
  number of steps; evaluation keeps every record.
* per epoch, a fresh shuffle of the shard (grain folds the epoch into the
  seed), or with `sampling='culture'`/`'product'` a draw with replacement of as
  many records as the shard holds, weighted by
  `artclf.data.balance.sampling_weights`;
* epochs are concatenated before batching, so with num_epochs=None training
  batches run on forever and a batch may straddle two epochs;
* each record's augmentation uses `transforms.example_rng(seed, epoch, record)`,
  independent of batching, workers or resumption; `transforms.preprocess_example`
  recomputes any view outside the pipeline.
Workers (`worker_count` > 0) are processes, each producing whole batches of
uint8 images; the float conversion happens in the consuming process so that
4x fewer bytes cross between processes. The result, order included, does not
depend on `worker_count`. Workers are started with multiprocessing 'spawn': a
script that uses them needs the `if __name__ == "__main__":` guard (absl's
app.run in a main() is fine).
"""

import dataclasses
import functools
from typing import Any

from absl import flags
import grain
import numpy as np

from artclf import labels
from artclf.data import balance, images, transforms


# Record index of the filler examples that pad_eval adds.
PAD_INDEX = -1


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Batching, order, sampling and parallelism of the pipeline; image settings in `augmentation`."""
  batch_size: int = 32
  seed: int = 0
  augmentation: transforms.AugmentConfig = transforms.AugmentConfig()
  # Training only: per-epoch reshuffle, number of epochs (None = forever),
  # and sampling: 'uniform', or class-balanced 'culture' / 'product' (see
  # artclf.data.balance.sampling_weights) with its power and weight cap.
  shuffle: bool = True
  num_epochs: int | None = None
  sampling: str = "uniform"
  sampling_power: float = 1.0
  sampling_max_weight: float | None = None
  # Evaluation only: pad every shard with filler examples (labels and index
  # -1, image all fill) up to the same whole number of full batches, so that
  # all hosts run the same number of equally shaped eval steps. Losses and
  # metrics already ignore label -1.
  pad_eval: bool = False
  # Parallelism: worker processes (0 = in this process), batches each one
  # keeps ready, and threads per process that decode and augment (0 = in the
  # consuming thread; threads only pay off when cores sit idle).
  worker_count: int = 0
  worker_buffer_size: int = 2
  read_threads: int = 0


def make_dataset(source, *, train: bool, config: PipelineConfig = PipelineConfig(),
                 shard_index: int | None = None,
                 shard_count: int | None = None) -> grain.IterDataset:
  """The batched dataset of a random-access split source (see the module docstring).

  Training: augmented, reshuffled (or class-balanced) every epoch, full
  batches only. Evaluation (train=False): no augmentation, source order, one
  pass, the last batch kept even if smaller (or padded, see `pad_eval`).
  Iterate with `iter(...)`; the iterator has get_state() / set_state().
  """
  shard_index, shard_count = _resolve_shard(shard_index, shard_count)
  record_ids = np.arange(shard_index, len(source), shard_count, dtype=np.int64)
  if train:
    record_ids = record_ids[: len(source) // shard_count]
  elif config.pad_eval:
    per_shard = -(-len(source) // shard_count)
    padded = -(-per_shard // config.batch_size) * config.batch_size
    record_ids = np.pad(record_ids, (0, padded - len(record_ids)), constant_values=PAD_INDEX)
  if not len(record_ids):
    raise ValueError(
        f"shard {shard_index} of {shard_count} of a {len(source)}-record source is empty")
  plan = grain.MapDataset.source(record_ids)
  if train and config.sampling != "uniform":
    split_labels = balance.read_split_labels(source)
    weights = balance.sampling_weights(
        {task: ids[record_ids] for task, ids in split_labels.items()}, config.sampling,
        power=config.sampling_power, max_weight=config.sampling_max_weight)
    plan = plan.repeat(config.num_epochs).map_with_index(
        _WeightedDraw(record_ids, weights, _derived_seed(config.seed, "sampling")))
  else:
    if train and config.shuffle:
      plan = plan.shuffle(seed=_derived_seed(config.seed, "shuffle"))
    plan = plan.repeat(config.num_epochs if train else 1).map_with_index(
        functools.partial(_with_epoch, epoch_length=len(record_ids)))
  examples = plan.map(_LoadExample(source, train, config.augmentation, config.seed))
  batches = examples.batch(config.batch_size, drop_remainder=train, batch_fn=_stack)
  dataset = batches.to_iter_dataset(
      grain.ReadOptions(num_threads=config.read_threads,
                        prefetch_buffer_size=max(2, 2 * config.read_threads)))
  if config.worker_count > 0:
    if not flags.FLAGS.is_parsed():
      # grain reads its absl flags when it starts workers; outside absl.app
      # (tests, notebooks) let them keep their defaults.
      flags.FLAGS.mark_as_parsed()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.worker_count, per_worker_buffer_size=config.worker_buffer_size))
  return dataset.map(_normalize_images)


def _resolve_shard(shard_index, shard_count) -> tuple[int, int]:
  if shard_index is None or shard_count is None:
    import jax  # pylint: disable=g-import-not-at-top  # Only when a default is needed.
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
  return shard_index, shard_count


def _derived_seed(seed: int, purpose: str) -> int:
  """Independent 32-bit seeds for shuffling and sampling from the one user seed."""
  purpose_key = int.from_bytes(purpose.encode()[:8], "little")
  return int(np.random.SeedSequence([seed, purpose_key]).generate_state(1)[0])


def _with_epoch(position: int, record_id: int, *, epoch_length: int) -> tuple[int, int]:
  return position // epoch_length, int(record_id)


class _WeightedDraw:
  """Position -> (epoch, record): each epoch draws len(record_ids) records with replacement."""

  def __init__(self, record_ids: np.ndarray, probabilities: np.ndarray, seed: int):
    self._record_ids = record_ids
    self._probabilities = probabilities
    self._seed = seed
    self._cached_epoch, self._cached_draw = -1, None

  def __call__(self, position: int, unused_record_id) -> tuple[int, int]:
    epoch, offset = divmod(position, len(self._record_ids))
    if epoch != self._cached_epoch:
      rng = np.random.default_rng([self._seed, epoch])
      self._cached_draw = rng.choice(self._record_ids, size=len(self._record_ids),
                                     p=self._probabilities)
      self._cached_epoch = epoch
    return epoch, int(self._cached_draw[offset])


class _LoadExample:
  """(epoch, record) -> {'image': uint8 [S, S, 3], task: int32, 'index': int64}."""

  def __init__(self, source, train: bool, augment_config: transforms.AugmentConfig, seed: int):
    self._source = source
    self._train = train
    self._augment_config = augment_config
    self._seed = seed

  def __call__(self, epoch_and_record: tuple[int, int]) -> dict[str, Any]:
    epoch, record_id = epoch_and_record
    if record_id == PAD_INDEX:
      size = self._augment_config.image_size
      filler = np.full((size, size, 3), self._augment_config.fill_rgb, dtype=np.uint8)
      example = {"image": filler, "index": np.int64(PAD_INDEX)}
      example.update({task: np.int32(labels.UNKNOWN) for task in labels.TASKS})
      return example
    record = self._source[record_id]
    try:
      image = transforms.preprocess_example(
          record["image"], train=self._train, config=self._augment_config,
          seed=self._seed, epoch=epoch, index=record_id, normalize=False)
    except images.ImageDecodeError as e:
      raise images.ImageDecodeError(
          f"record {record_id} ({record['image_path'].decode()}): {e}") from None
    example = {"image": image, "index": np.int64(record_id)}
    example.update({task: np.int32(record[task]) for task in labels.TASKS})
    return example


def _stack(examples) -> dict[str, np.ndarray]:
  return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def _normalize_images(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {**batch, "image": transforms.caffe_normalize(batch["image"])}
