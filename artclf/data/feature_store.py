"""Features of single photographs, content-addressed: each computed once, whatever its path.

  store = FeatureStore(folder, context)        # context: digest of weights and view settings
  features = store.get(image_bytes_list, compute)   # {net name: [N, ...]}

The feature cache (`artclf.data.feature_cache`) keys a whole split; a collection's
photographs come and go one by one (a corrections CSV grows, crossval draws k of them),
so here each one is kept under the sha256 of its bytes, inside a folder named by the
context (the frozen weights and everything that shapes the view). `compute` is called
once, on the photographs not stored yet; with folder None the store lives in memory.
Training's frozen-stage features of the evaluation view are kept here too
(`artclf.train.phase_data.FrozenFeatures`), so that a split made of photographs seen
before (a crossval fold, an adapt's base rows) costs no trunk pass.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Callable, Sequence

import numpy as np


def image_digest(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


class FeatureStore:
  """Per-photograph features under one context, on disk (folder) or in memory (None)."""

  def __init__(self, folder: str | os.PathLike | None, context: str):
    self.folder = pathlib.Path(folder) / context if folder else None
    self.memory: dict[str, dict[str, np.ndarray]] = {}

  def _path(self, digest: str) -> pathlib.Path:
    return self.folder / digest[:2] / f"{digest}.npz"

  def _load(self, digest: str) -> dict[str, np.ndarray] | None:
    if digest in self.memory:
      return self.memory[digest]
    if self.folder is None or not self._path(digest).exists():
      return None
    try:
      with np.load(self._path(digest)) as saved:
        return {name: saved[name] for name in saved.files}
    except (OSError, ValueError):
      return None  # a damaged file is computed again

  def _save(self, digest: str, features: dict[str, np.ndarray]) -> None:
    if self.folder is None:
      self.memory[digest] = features
      return
    path = self._path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
      np.savez(f, **features)
    os.replace(tmp, path)

  def get(self, images: Sequence[bytes],
          compute: Callable[[list[bytes]], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{net name: [len(images), ...]}; compute(missing images) -> {net name: [M, ...]}."""
    digests = [image_digest(data) for data in images]
    found = {digest: self._load(digest) for digest in set(digests)}
    missing = sorted(d for d, value in found.items() if value is None)
    if missing:
      first = {d: images[digests.index(d)] for d in missing}
      computed = compute([first[d] for d in missing])
      for i, digest in enumerate(missing):
        found[digest] = {name: np.asarray(value[i]) for name, value in computed.items()}
        self._save(digest, found[digest])
    if not digests:
      return {}
    names = sorted(found[digests[0]])
    return {name: np.stack([found[d][name] for d in digests]) for name in names}
