"""The one batched forward loop: rows in, outputs out, on one device, a mesh, or many hosts.

Everything that runs a network over many inputs without training it goes through here:
validation during training, `python -m artclf.evaluate`, `artclf.predict`, the feature
cache and the benches. So padding, sharding and gathering from hosts are written once.

  outputs = inference.forward_rows(apply, load_rows, num_rows, local_batch_size, mesh)

`apply(inputs)` is a jitted function of a batch sharded over the mesh's 'data' axis that
returns a dict of arrays sharded the same way. `load_rows(row_ids)` returns this host's
inputs for those rows as numpy arrays (a dict). Rows are dealt out in blocks: global batch
b holds rows [b * G, (b + 1) * G) with G = local_batch_size * process_count, and host h
holds the h-th block of local_batch_size rows of it. Every host runs the same number of
equally shaped steps (the last ones padded with zero rows), and afterwards every host
holds every row's outputs, so that all of them take the same decisions from them (model
selection, early stopping).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Callable, Iterable, Iterator, Mapping

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from artclf.mesh import to_global, to_local

PAD_ROW = -1  # the row id of padding


def local_row_blocks(num_rows: int, local_batch_size: int, process_index: int = 0,
                     process_count: int = 1) -> np.ndarray:
  """This host's row ids per step, int64 [steps, local_batch_size], PAD_ROW where padded."""
  global_batch = local_batch_size * process_count
  steps = max(1, -(-num_rows // global_batch))
  rows = np.arange(steps * global_batch).reshape(steps, process_count, local_batch_size)
  rows = rows[:, process_index].copy()
  rows[rows >= num_rows] = PAD_ROW
  return rows


def bucket_size(count: int, batch_size: int, multiple: int) -> int:
  """The padded size of a last, partial batch: a power of two, a multiple of `multiple`.

  A handful of shapes, each compiled once, and one image does not pay for a whole batch.
  """
  size = 1 << max(0, (count - 1).bit_length())
  size = -(-size // multiple) * multiple
  return min(size, batch_size)


def pad_rows(arrays: Mapping, size: int) -> dict:
  """Pads every array of a (nested) dict with zero rows to `size` rows."""
  def pad(x):
    x = np.asarray(x)
    if len(x) == size:
      return x
    out = np.zeros((size,) + x.shape[1:], x.dtype)
    out[:len(x)] = x
    return out
  return jax.tree.map(pad, dict(arrays))


def iter_forward(apply: Callable, batches: Iterable[tuple[dict, int]], mesh: Mesh,
                 batch_size: int, bucketed: bool = False) -> Iterator[dict]:
  """Runs `apply` on each host-local (inputs, count) batch; yields this host's outputs.

  Each batch is padded to `batch_size` rows, or with `bucketed` (one process only: hosts
  must agree on shapes) to `bucket_size` of its count, so that a lone image runs alone.
  The yielded outputs are cut back to `count` rows.
  """
  devices = mesh.devices.size
  if batch_size % devices:
    raise ValueError(f"a batch of {batch_size} does not split over {devices} devices")
  for inputs, count in batches:
    size = bucket_size(count, batch_size, devices) if bucketed else batch_size
    outputs = to_local(apply(to_global(pad_rows(inputs, size), mesh)), mesh)
    yield jax.tree.map(lambda x, count=count: x[:count], outputs)


def _prefetched(load_rows: Callable, blocks: np.ndarray, threads: int) -> Iterator[tuple[dict, int]]:
  """(inputs, count) per block, loaded `threads` blocks ahead in a thread pool.

  Decoding and resizing in Pillow release the GIL, so threads keep the network fed.
  """
  def load(block):
    valid = block[block != PAD_ROW]
    if not len(valid):  # a host with nothing left: row 0 as a stand-in, counted as none
      return load_rows(np.zeros(1, np.int64)), 0
    return load_rows(valid), len(valid)

  if threads <= 0:
    yield from (load(block) for block in blocks)
    return
  with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
    pending = [pool.submit(load, block) for block in blocks[:threads + 1]]
    for index in range(len(blocks)):
      result = pending.pop(0).result()
      if index + threads + 1 < len(blocks):
        pending.append(pool.submit(load, blocks[index + threads + 1]))
      yield result


def forward_rows(apply: Callable, load_rows: Callable[[np.ndarray], dict], num_rows: int,
                 local_batch_size: int, mesh: Mesh, *, threads: int = 2,
                 output_dtype=None, what: str | None = None) -> dict:
  """Every row's outputs of `apply`, on every host, in row order (see the module docstring).

  `output_dtype` converts each batch's outputs as they arrive (float16 for a large
  feature cache); `what` names the work in progress lines every 15 seconds.
  """
  process_index, process_count = jax.process_index(), jax.process_count()
  blocks = local_row_blocks(num_rows, local_batch_size, process_index, process_count)
  progress = _Progress(what, num_rows)
  parts = []
  batches = _prefetched(load_rows, blocks, threads)
  for outputs in iter_forward(apply, batches, mesh, local_batch_size):
    if output_dtype is not None:
      outputs = jax.tree.map(lambda x: x.astype(output_dtype), outputs)
    parts.append(jax.tree.map(lambda x: pad_rows({"x": x}, local_batch_size)["x"], outputs))
    progress.step(local_batch_size * process_count)
  local = jax.tree.map(lambda *xs: np.stack(xs), *parts)  # [steps, local_batch, ...]
  return jax.tree.map(lambda x: _all_rows(x, num_rows), local)


def _all_rows(local: np.ndarray, num_rows: int) -> np.ndarray:
  """[steps, local_batch, ...] of this host -> [num_rows, ...] of all hosts, in row order."""
  if jax.process_count() > 1:
    gathered = np.asarray(multihost_utils.process_allgather(local))  # [hosts, steps, batch, ...]
    local = np.swapaxes(gathered, 0, 1)  # global batch b is hosts' blocks in process order
    local = local.reshape((-1,) + local.shape[3:])
  else:
    local = local.reshape((-1,) + local.shape[2:])
  return local[:num_rows]


class _Progress:
  """Logs 'what: done/total, rate, time left' every 15 seconds, and at the end."""

  def __init__(self, what: str | None, total: int):
    self.what, self.total, self.done = what, total, 0
    self.start = self.last = time.time()

  def step(self, count: int) -> None:
    if self.what is None:
      return
    self.done = min(self.done + count, self.total)
    now = time.time()
    if now - self.last > 15 or self.done >= self.total:
      rate = self.done / max(now - self.start, 1e-9)
      logging.info("%s: %d/%d, %.1f/s, %.0f s left", self.what, self.done, self.total, rate,
                   (self.total - self.done) / max(rate, 1e-9))
      self.last = now
