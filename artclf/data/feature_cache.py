"""The frozen-trunk fast path: compute the frozen stages' outputs once, train on them.

When a phase trains only the heads (or the top stages), everything below is a fixed
function of the input view. On a CPU, running it once per image view instead of once
per step turns minutes per epoch into seconds. With augmentation on, K augmented views
of every training image are cached (view k is exactly the view the grain pipeline would
produce for that image in epoch k), and epoch e trains on view e mod K.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import logging

from artclf import inference
from artclf import mesh as mesh_lib
from artclf import scheme as scheme_lib
from artclf.data import balance, transforms


def view_loader(source, num_records: int, views: Sequence[int | None],
                augment_config: transforms.AugmentConfig, seed: int):
  """load_rows for `inference.forward_rows` over len(views) * num_records view rows.

  Row r is view views[r // num_records] of record r % num_records; view None is the
  evaluation view, view k the augmented view of epoch k (what the pipeline gives).
  """
  def load_rows(rows: np.ndarray) -> dict[str, np.ndarray]:
    pictures = []
    for row in rows:
      view, index = views[int(row) // num_records], int(row) % num_records
      pictures.append(transforms.preprocess_example(
          source[index]["image"], train=view is not None, config=augment_config, seed=seed,
          epoch=view or 0, index=index, normalize=False))
    return {"image": np.stack(pictures)}
  return load_rows


def compute_features(apply, source, views: Sequence[int | None],
                     augment_config: transforms.AugmentConfig, seed: int,
                     local_batch_size: int, mesh, dtype, what: str = "features"
                     ) -> dict[str, np.ndarray]:
  """{net name: [len(views), len(source), h, w, c]} of `apply` (images -> {net: features}).

  Runs through the one inference loop, so every host gets every row; stored as `dtype`.
  """
  num_records = len(source)
  outputs = inference.forward_rows(
      apply, view_loader(source, num_records, views, augment_config, seed),
      len(views) * num_records, local_batch_size, mesh, output_dtype=dtype,
      what=f"{what} ({len(views)} view(s) of {num_records} images)")
  return {name: value.reshape((len(views), num_records) + value.shape[1:])
          for name, value in outputs.items()}


def cache_key(description: dict[str, Any], frozen_arrays: Sequence[np.ndarray]) -> str:
  """A digest of everything the cached features depend on: data, views, and the frozen weights."""
  digest = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode())
  for array in frozen_arrays:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()[:24]


def source_digest(source, label_ids: dict[str, np.ndarray]) -> str:
  """A digest of a split's records (image bytes and label ids), so a rebuilt dataset misses
  the cache."""
  digest = hashlib.sha256()
  for index in range(len(source)):
    digest.update(source[index]["image"])
  for task in sorted(label_ids):
    digest.update(task.encode())
    digest.update(np.asarray(label_ids[task], np.int32).tobytes())
  return digest.hexdigest()


def load_or_compute(cache_dir: str | os.PathLike | None, key: str,
                    compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """compute(), or its result saved earlier under cache_dir/key (None: no disk cache).

  Repeated runs with the same data, views and frozen weights (tuning the heads, say)
  then skip the slow part. On several hosts, all of them compute unless every one of
  them finds the files (compute is collective), and only process 0 writes them, to a
  temporary name first.
  """
  if not cache_dir:
    return compute()
  folder = pathlib.Path(cache_dir) / key
  index = folder / "index.json"
  if mesh_lib.on_every_host(index.exists()):
    names = json.loads(index.read_text())["names"]
    logging.info("Reusing cached features from %s", folder)
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}
  result = compute()
  if jax.process_index() == 0:
    _write(folder, result)
  return result


def _write(folder: pathlib.Path, result: dict[str, np.ndarray]) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for name, value in result.items():
    tmp = folder / f"{name}.npy.tmp"
    with open(tmp, "wb") as f:
      np.save(f, value)
    os.replace(tmp, folder / f"{name}.npy")
  tmp = folder / "index.json.tmp"
  tmp.write_text(json.dumps({"names": sorted(result)}))
  os.replace(tmp, folder / "index.json")


class CachedBatches:
  """Training batches drawn from cached features; the position is just the step number.

  Epoch e uses view e mod K, in an order that is a pure function of (seed, e): so a run
  resumed at step s sees exactly the batches an uninterrupted run would.
  """

  def __init__(self, features: dict[str, np.ndarray], label_ids: dict[str, np.ndarray],
               scheme: scheme_lib.LabelScheme, batch_size: int, seed: int,
               sampling: str = "uniform", sampling_power: float = 1.0,
               sampling_max_weight: float | None = None):
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
      weights = balance.sampling_weights(label_ids, scheme, sampling, power=sampling_power,
                                         max_weight=sampling_max_weight)
      self.sampling_weights = weights / weights.sum()

  def _order(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, epoch])
    if self.sampling_weights is None:
      return rng.permutation(self.num_examples)
    return rng.choice(self.num_examples, self.num_examples, p=self.sampling_weights)

  def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict:
    """This host's block of the global batch number `step` (block h of P for host h)."""
    epoch, position = divmod(step, self.steps_per_epoch)
    rows = self._order(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
    local = self.batch_size // process_count
    rows = rows[process_index * local:(process_index + 1) * local]
    view = epoch % self.num_views
    batch = {task: ids[rows] for task, ids in self.labels.items()}
    batch["features"] = {name: f[view, rows].astype(np.float32) for name, f in self.features.items()}
    return batch
