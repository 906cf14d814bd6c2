"""The frozen-trunk fast path: compute the frozen stages' outputs once, train on them.

When a phase trains only the heads (or the top stages), everything below is a fixed
function of the input view. On a CPU, running it once per image view instead of once
per step turns minutes per epoch into seconds. With augmentation on, K augmented views
of every training image are cached (view k is exactly the view the grain pipeline would
produce for that image in epoch k), and epoch e trains on view e mod K.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import pathlib
import time
from typing import Any, Callable, Sequence

import numpy as np
from absl import logging

from artclf import labels
from artclf.data import balance, transforms


def _load_views(source, indices: Sequence[int], views: Sequence[int | None],
                augment_config: transforms.AugmentConfig, seed: int) -> np.ndarray:
  """Preprocessed float32 images [len(views) * len(indices), S, S, 3]; view None = evaluation."""
  images = []
  for view in views:
    for index in indices:
      image_bytes = source[int(index)]["image"]
      images.append(transforms.preprocess_example(
          image_bytes, train=view is not None, config=augment_config, seed=seed,
          epoch=view or 0, index=int(index)))
  return np.stack(images)


def compute_features(features_fn: Callable[[np.ndarray], dict[str, np.ndarray]], source,
                     indices: Sequence[int], views: Sequence[int | None],
                     augment_config: transforms.AugmentConfig, seed: int, batch_size: int,
                     what: str = "features") -> dict[str, np.ndarray]:
  """{net name: float16 [len(views), len(indices), h, w, c]} of `features_fn` over all views.

  `features_fn` maps a float32 image batch (padded to `batch_size`) to the frozen
  stages' outputs. Image decoding runs in a thread pool while the network runs.
  """
  indices = np.asarray(indices)
  per_batch = max(1, batch_size // len(views))
  chunks = [indices[i:i + per_batch] for i in range(0, len(indices), per_batch)]
  outputs: dict[str, list[np.ndarray]] = {}
  start = last_report = time.time()
  done = 0
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    pending = [pool.submit(_load_views, source, c, views, augment_config, seed) for c in chunks[:2]]
    for chunk_index, chunk in enumerate(chunks):
      images = pending.pop(0).result()
      if chunk_index + 2 < len(chunks):
        pending.append(pool.submit(_load_views, source, chunks[chunk_index + 2], views,
                                   augment_config, seed))
      count = len(images)
      padded = np.zeros((per_batch * len(views),) + images.shape[1:], np.float32)
      padded[:count] = images
      for name, value in features_fn(padded).items():
        value = np.asarray(value[:count], np.float16)
        outputs.setdefault(name, []).append(value.reshape((len(views), len(chunk)) + value.shape[1:]))
      done += count
      now = time.time()
      if now - last_report > 15 or chunk_index == len(chunks) - 1:
        rate = done / (now - start)
        total = len(indices) * len(views)
        logging.info("%s: %d/%d image views, %.1f views/s, %.0f s left", what, done, total, rate,
                     (total - done) / max(rate, 1e-9))
        last_report = now
  return {name: np.concatenate(parts, axis=1) for name, parts in outputs.items()}


def cache_key(description: dict[str, Any], frozen_arrays: Sequence[np.ndarray]) -> str:
  """A digest of everything the cached features depend on: data, views, and the frozen weights."""
  digest = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode())
  for array in frozen_arrays:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()[:24]


def source_digest(source) -> str:
  """A digest of a split's records (image bytes and labels), so a rebuilt dataset misses the cache."""
  digest = hashlib.sha256()
  for index in range(len(source)):
    record = source[index]
    digest.update(record["image"])
    digest.update(np.asarray([int(record[task]) for task in labels.TASKS], np.int32).tobytes())
  return digest.hexdigest()


def load_or_compute(cache_dir: str | os.PathLike | None, key: str,
                    compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """compute(), or its result saved earlier under cache_dir/key (None: no disk cache).

  Repeated runs with the same data, views and frozen weights (tuning the heads, say)
  then skip the slow part. Files are written to a temporary name and renamed.
  """
  if not cache_dir:
    return compute()
  folder = pathlib.Path(cache_dir) / key
  index = folder / "index.json"
  if index.exists():
    names = json.loads(index.read_text())["names"]
    logging.info("Reusing cached features from %s", folder)
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}
  result = compute()
  folder.mkdir(parents=True, exist_ok=True)
  for name, value in result.items():
    tmp = folder / f"{name}.npy.tmp"
    with open(tmp, "wb") as f:
      np.save(f, value)
    os.replace(tmp, folder / f"{name}.npy")
  index.write_text(json.dumps({"names": sorted(result)}))
  return result


def read_labels(source, indices: Sequence[int]) -> dict[str, np.ndarray]:
  rows = [source[int(i)] for i in indices]
  return {task: np.array([int(r[task]) for r in rows], np.int32) for task in labels.TASKS}


class CachedBatches:
  """Training batches drawn from cached features; the position is just the step number.

  Epoch e uses view e mod K, in an order that is a pure function of (seed, e): so a run
  resumed at step s sees exactly the batches an uninterrupted run would.
  """

  def __init__(self, features: dict[str, np.ndarray], label_ids: dict[str, np.ndarray],
               batch_size: int, seed: int, sampling: str = "uniform", sampling_power: float = 1.0):
    self.features = features
    self.labels = label_ids
    self.batch_size = batch_size
    self.seed = seed
    self.num_views, self.num_examples = next(iter(features.values())).shape[:2]
    self.steps_per_epoch = self.num_examples // batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f"{self.num_examples} training examples are fewer than one batch "
                       f"of {batch_size}")
    self.sampling_weights = None
    if sampling != "uniform":
      weights = balance.sampling_weights(label_ids, sampling, power=sampling_power)
      self.sampling_weights = weights / weights.sum()

  def _order(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, epoch])
    if self.sampling_weights is None:
      return rng.permutation(self.num_examples)
    return rng.choice(self.num_examples, self.num_examples, p=self.sampling_weights)

  def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict:
    """This host's slice of the global batch number `step`."""
    epoch, position = divmod(step, self.steps_per_epoch)
    rows = self._order(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
    rows = rows[process_index::process_count]
    view = epoch % self.num_views
    batch = {task: ids[rows] for task, ids in self.labels.items()}
    batch["features"] = {name: f[view, rows].astype(np.float32) for name, f in self.features.items()}
    return batch
