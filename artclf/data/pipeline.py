"""The grain training pipeline: a TFDS `ancient_art` split -> augmented batches, forever.

  train = dataset.open_labelled(data_dir, "train", scheme)
  batches = pipeline.make_dataset(train, scheme, PipelineConfig(batch_size=32, seed=0))
  iterator = iter(batches)
  batch = next(iterator)  # {'image': uint8 [b, S, S, 3], 'culture': int32 [b], ..., 'index': int64 [b]}
  state = iterator.get_state()   # save with the model checkpoint ...
  iterator.set_state(state)      # ... and the resumed run continues with the next batch.

Batches: `image` is uint8 RGB (the network makes its own input from pixels, see
`artclf.models`), one int32 class id per task of the scheme (UNKNOWN = -1), `index`
the record's position in the split source. `b` is this host's share of the
global `batch_size`.

How the order is made, the same whatever the number of hosts (all deterministic given
`seed`): epoch e is a permutation of all records drawn from (seed, e), or with
`sampling=<task>`/`'product'` as many draws with replacement weighted by
`artclf.data.balance.sampling_weights`. Epochs are concatenated into one stream cut into
global batches of `batch_size` (a batch may straddle two epochs). Host h of P takes the
h-th block of batch_size / P records of every global batch, which is exactly the block
of the global batch array that `jax.make_array_from_process_local_data` expects from it.
So one host with 8 devices and 8 hosts with one device train on the same batches.

Each record's augmentation uses `transforms.example_rng(seed, epoch, record)`,
independent of batching, workers, hosts or resumption; `transforms.preprocess_example`
recomputes any view outside the pipeline. Workers (`worker_count` > 0) are processes,
each producing whole uint8 batches; the result, order included, does not depend on
`worker_count`. Workers are started with multiprocessing 'spawn': a script that uses them
needs the `if __name__ == "__main__":` guard (absl's app.run in a main() is fine).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import grain
import numpy as np
from absl import flags

from artclf import scheme as scheme_lib
from artclf.data import balance, dataset, images, transforms


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Batching, order, sampling and parallelism of the pipeline; image settings in `augmentation`."""
  batch_size: int = 32  # global, over all hosts
  seed: int = 0
  augmentation: transforms.AugmentConfig = transforms.AugmentConfig()
  # 'uniform' (a fresh permutation per epoch, or the source order if not shuffle), or
  # class-balanced '<task>' / 'product' draws (artclf.data.balance.sampling_weights)
  # with its power and weight cap (None: no cap).
  shuffle: bool = True
  sampling: str = "uniform"
  sampling_power: float = 1.0
  sampling_max_weight: float | None = None
  # Parallelism: worker processes (0 = in this process), batches each one keeps
  # ready, and threads per process that decode and augment (0 = in the consuming
  # thread; threads only pay off when cores sit idle).
  worker_count: int = 0
  worker_buffer_size: int = 2
  read_threads: int = 0


def make_dataset(split: dataset.LabelledSplit, scheme: scheme_lib.LabelScheme,
                 config: PipelineConfig = PipelineConfig(), *,
                 process_index: int | None = None,
                 process_count: int | None = None) -> grain.IterDataset:
  """This host's endless stream of augmented training batches (see the module docstring).

  Iterate with `iter(...)`; the iterator has get_state() / set_state().
  """
  process_index, process_count = _resolve_hosts(process_index, process_count)
  if config.batch_size % process_count:
    raise ValueError(f"batch_size {config.batch_size} is not a multiple of the "
                     f"{process_count} hosts")
  if not len(split):
    raise ValueError("the training split is empty")
  order = EpochOrder(split, scheme, config)
  local_batch = config.batch_size // process_count
  positions = grain.MapDataset.range(0, sys.maxsize).map(
      _HostPositions(config.batch_size, local_batch, process_index))
  examples = positions.map(order.record_at).map(
      _LoadExample(split, config.augmentation, config.seed))
  batches = examples.batch(local_batch, drop_remainder=True, batch_fn=_stack)
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
  return dataset


def _resolve_hosts(process_index, process_count) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=import-outside-toplevel  # Only when a default is needed.
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  return process_index, process_count


class _HostPositions:
  """This host's position q in its stream -> the position in the global stream."""

  def __init__(self, global_batch: int, local_batch: int, process_index: int):
    self.global_batch, self.local_batch, self.process_index = global_batch, local_batch, process_index

  def __call__(self, q: int) -> int:
    step, offset = divmod(q, self.local_batch)
    return step * self.global_batch + self.process_index * self.local_batch + offset


class EpochOrder:
  """Global stream position -> (epoch, record): a pure function of (seed, epoch)."""

  def __init__(self, split: dataset.LabelledSplit, scheme: scheme_lib.LabelScheme,
               config: PipelineConfig):
    self.num_records = len(split)
    self.seed = _derived_seed(config.seed, "order")
    self.shuffle = config.shuffle
    self.probabilities = None
    if config.sampling != "uniform":
      self.probabilities = balance.sampling_weights(
          split.labels, scheme, config.sampling, power=config.sampling_power,
          max_weight=config.sampling_max_weight)
    # (epoch, its order), replaced whole: reader threads never see a half-updated pair.
    self._cache = (-1, None)

  def epoch_order(self, epoch: int) -> np.ndarray:
    """The records of one epoch, in order."""
    rng = np.random.default_rng([self.seed, epoch])
    if self.probabilities is not None:
      return rng.choice(self.num_records, size=self.num_records, p=self.probabilities)
    if self.shuffle:
      return rng.permutation(self.num_records)
    return np.arange(self.num_records)

  def record_at(self, position: int) -> tuple[int, int]:
    epoch, offset = divmod(position, self.num_records)
    cached_epoch, order = self._cache
    if cached_epoch != epoch:
      order = self.epoch_order(epoch)
      self._cache = (epoch, order)
    return epoch, int(order[offset])


def _derived_seed(seed: int, purpose: str) -> int:
  """An independent 32-bit seed for one purpose from the one user seed."""
  purpose_key = int.from_bytes(purpose.encode()[:8], "little")
  return int(np.random.SeedSequence([seed, purpose_key]).generate_state(1)[0])


class _LoadExample:
  """(epoch, record) -> {'image': uint8 [S, S, 3], task: int32, 'index': int64}."""

  def __init__(self, split: dataset.LabelledSplit, augment_config: transforms.AugmentConfig,
               seed: int):
    self._source = split.source
    self._labels = split.labels
    self._augment_config = augment_config
    self._seed = seed

  def __call__(self, epoch_and_record: tuple[int, int]) -> dict[str, Any]:
    epoch, record_id = epoch_and_record
    record = self._source[record_id]
    try:
      image = transforms.preprocess_example(
          record["image"], train=True, config=self._augment_config,
          seed=self._seed, epoch=epoch, index=record_id, normalize=False)
    except images.ImageDecodeError as e:
      raise images.ImageDecodeError(
          f"record {record_id} ({record['image_path'].decode()}): {e}") from None
    example = {"image": image, "index": np.int64(record_id)}
    example.update({task: np.int32(ids[record_id]) for task, ids in self._labels.items()})
    return example


def _stack(examples) -> dict[str, np.ndarray]:
  return {key: np.stack([e[key] for e in examples]) for key in examples[0]}
