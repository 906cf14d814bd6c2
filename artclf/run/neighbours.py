"""The nearest training photos of a photo, in the space the heads read.

  index = neighbours.index_for(trained)          # WORKDIR/neighbours.npz, built once if missing
  index.nearest(outputs["pooled"], k)            # [(row, cosine similarity), ...] per photo
  index.entry(row)   # {'image', 'object_id', 'museum', 'title', 'credit', 'labels': {task: ...}}
  index.thumbnail(row)  # JPEG bytes, at most config.neighbours.thumbnail_size px a side

WORKDIR/neighbours.npz holds, for every photo of the run's training split, its pooled
vector (L2-normalised, float16), its labels and catalogue fields (museum, object id,
title, credit line, its path in the training data) and a small JPEG thumbnail, so that
a run explains its answers without its dataset at hand. Training writes it at its end
(`save`, beside the familiarity fit, from the same forward pass); for a run without one
(trained before, or adapted) `index_for` takes a related run's (the adapted run's base)
when a few probes show the same vectors, or else computes it once from the run's
training split, and writes it. A run taught from a collection gets the taught photos
appended (`add_photos`), so that they show among the neighbours.
"""

from __future__ import annotations

import io
import json
import pathlib
import shutil

import numpy as np
from absl import logging
from PIL import Image

from artclf.data import images as image_io

NEIGHBOURS_FILE = "neighbours.npz"
# Catalogue fields each neighbour carries, when the training data has them.
FIELDS = ("object_id", "museum", "title", "credit")
DEFAULT_THUMBNAIL_SIZE = 128  # runs saved before config.neighbours


def thumbnail_size_of(config) -> int:
  settings = config.get("neighbours") or {}
  return int(settings.get("thumbnail_size", DEFAULT_THUMBNAIL_SIZE))


def enabled(config) -> bool:
  settings = config.get("neighbours") or {}
  return bool(settings.get("enabled", True))


def normalised(vectors: np.ndarray) -> np.ndarray:
  vectors = np.asarray(vectors, np.float32)
  return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def thumbnail_jpeg(data: bytes, size: int) -> bytes:
  """A JPEG of at most size x size pixels of an encoded image ('' when it does not decode)."""
  try:
    picture = image_io.decode_image(data, draft_size=size)
  except image_io.ImageDecodeError:
    return b""
  picture.thumbnail((size, size), Image.Resampling.LANCZOS)
  buffer = io.BytesIO()
  picture.save(buffer, "JPEG", quality=85)
  return buffer.getvalue()


def entry_of(record: dict, labels: dict[str, str]) -> dict:
  """The catalogue fields of a dataset record, and its labels."""
  metadata = json.loads(record["metadata_json"].decode()) if "metadata_json" in record else {}
  path = record.get("image_path", b"")
  entry = {"image": path.decode() if isinstance(path, bytes) else str(path)}
  for field in FIELDS:
    value = record.get(field, metadata.get(field, ""))
    entry[field] = value.decode() if isinstance(value, bytes) else str(value or "")
  entry["labels"] = labels
  return entry


def label_texts(label_ids: dict[str, np.ndarray], scheme, row: int) -> dict[str, str]:
  """{task: class name or '' (unknown)} of one row's class ids."""
  return {task: (scheme.classes[task][int(ids[row])] if int(ids[row]) >= 0 else "")
          for task, ids in label_ids.items()}


def save(workdir: pathlib.Path, pooled: np.ndarray, source, label_ids: dict[str, np.ndarray],
         scheme, thumbnail_size: int) -> pathlib.Path:
  """Writes WORKDIR/neighbours.npz for the training rows of `source` (a dataset split's
  records, in the order of `pooled` and `label_ids`)."""
  entries, thumbnails = [], []
  for row in range(len(source)):
    record = source[row]
    entries.append(entry_of(record, label_texts(label_ids, scheme, row)))
    thumbnails.append(np.frombuffer(thumbnail_jpeg(record["image"], thumbnail_size), np.uint8))
  offsets = np.cumsum([0] + [len(t) for t in thumbnails]).astype(np.int64)
  path = pathlib.Path(workdir) / NEIGHBOURS_FILE
  write(path, NeighbourIndex(normalised(pooled), entries,
                             np.concatenate(thumbnails or [np.zeros(0, np.uint8)]), offsets))
  logging.info("Neighbours of %d training photos written to %s", len(entries), path)
  return path


def write(path: pathlib.Path, index: "NeighbourIndex") -> None:
  """Writes an index atomically (a reader never sees half a file)."""
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, vectors=index.vectors.astype(np.float16),
           entries=np.array(json.dumps(index.entries, ensure_ascii=False)),
           thumbnails=index.thumbnails, offsets=index.offsets)
  tmp.replace(path)


class NeighbourIndex:
  """The training photos' normalised pooled vectors, entries and thumbnails."""

  def __init__(self, vectors: np.ndarray, entries: list[dict], thumbnails: np.ndarray,
               offsets: np.ndarray):
    self.vectors = np.asarray(vectors, np.float32)
    self.entries, self.thumbnails, self.offsets = entries, thumbnails, offsets

  @classmethod
  def load(cls, path: pathlib.Path) -> "NeighbourIndex":
    with np.load(path, allow_pickle=False) as saved:
      return cls(saved["vectors"], json.loads(str(saved["entries"])), saved["thumbnails"],
                 saved["offsets"])

  def __len__(self) -> int:
    return len(self.entries)

  def nearest(self, pooled: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row of `pooled`, the k training rows of highest cosine similarity, best first."""
    k = min(int(k), len(self))
    if k <= 0:
      return [[] for _ in range(len(pooled))]
    similarity = normalised(pooled) @ self.vectors.T
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return [[(int(i), round(float(similarity[n, i]), 6)) for i in row]
            for n, row in enumerate(top)]

  def entry(self, row: int) -> dict:
    return {"row": int(row), **self.entries[row]}

  def thumbnail(self, row: int) -> bytes:
    """The JPEG thumbnail of a training row; IndexError outside the index."""
    if not 0 <= row < len(self):
      raise IndexError(row)
    return self.thumbnails[self.offsets[row]:self.offsets[row + 1]].tobytes()


def _train_split(trained):
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  config = trained.config
  return dataset.open_labelled(config.data.data_dir, config.data.train_split, trained.scheme,
                               config.data.max_examples, config.data.get("exclude", ""))


def build_for(trained) -> NeighbourIndex:
  """Computes the index of a run without one from its training split (and writes it)."""
  from artclf import inference  # pylint: disable=import-outside-toplevel  # runs the network
  from artclf.data import transforms  # pylint: disable=import-outside-toplevel
  split = _train_split(trained)
  logging.info("Computing the neighbours of %s from its %d training photos", trained.workdir,
               len(split))
  pooled = inference.forward_rows(
      trained.apply_outputs(), transforms.eval_view_loader(split.source, trained.augment),
      len(split), trained.local_batch_size, trained.mesh,
      what="neighbours: train split")["pooled"]
  path = save(trained.workdir, pooled, split.source, split.labels, trained.scheme,
              thumbnail_size_of(trained.config))
  return NeighbourIndex.load(path)


def reusable(trained, other: NeighbourIndex, probes: int) -> bool:
  """Whether another run's index (an adapted run's base) holds this run's vectors: this
  run's training photos first, with the same pooled vectors for the first `probes` of
  them (an adapt that left the layers below the heads as they were)."""
  split = _train_split(trained)
  if len(other) < len(split) or not len(split):  # it may hold photos taught after them
    return False
  count = min(probes, len(split))
  views = np.stack([trained.view(split.source[row]["image"]) for row in range(count)])
  vectors = normalised(trained.outputs(views, flip_tta=False)["pooled"])
  return bool(np.all(np.sum(vectors * other.vectors[:count], axis=1) > 0.999))


def index_for(trained, related=(), probes: int = 8) -> NeighbourIndex | None:
  """The run's index: WORKDIR/neighbours.npz; else a related run's (`related`: workdirs,
  such as the run it was adapted from) when `reusable`, copied; else built from its
  training split once.

  None when the run turned neighbours off or its training data cannot be found.
  """
  if trained.neighbour_index is not None:
    return trained.neighbour_index
  if not enabled(trained.config) or trained.workdir is None:
    return None
  path = trained.workdir / NEIGHBOURS_FILE
  try:
    index = NeighbourIndex.load(path) if path.exists() else None
    for other_path in ([] if index else [pathlib.Path(r) / NEIGHBOURS_FILE for r in related]):
      other = NeighbourIndex.load(other_path) if other_path.exists() else None
      if other is not None and reusable(trained, other, probes):
        shutil.copyfile(other_path, path)
        logging.info("Neighbours of %s: those of %s (the same vectors)", trained.workdir,
                     other_path.parent)
        index = other
        break
    index = index or build_for(trained)
  except Exception as error:  # pylint: disable=broad-except  # optional: warn, go on
    logging.warning("no neighbours for %s: %s", trained.workdir, str(error)[:200])
    return None
  trained.neighbour_index = index
  return index


def add_photos(trained, photos, related=()) -> NeighbourIndex | None:
  """The run's index (see `index_for`) with photos it was taught appended, and saved:
  photos are (name, encoded bytes, {task: class or ''}); their entries have the name as
  `image`, no catalogue fields, and `taught` set."""
  index = index_for(trained, related)
  if index is None or not photos:
    return index
  views = np.stack([trained.view(data) for _, data, _ in photos])
  pooled = normalised(trained.outputs(views, flip_tta=False)["pooled"])
  size = thumbnail_size_of(trained.config)
  entries = [{"image": name, **{field: "" for field in FIELDS}, "labels": dict(labels),
              "taught": True} for name, _, labels in photos]
  thumbnails = [np.frombuffer(thumbnail_jpeg(data, size), np.uint8) for _, data, _ in photos]
  offsets = index.offsets[-1] + np.cumsum([0] + [len(t) for t in thumbnails])[1:]
  grown = NeighbourIndex(np.concatenate([index.vectors, pooled]), index.entries + entries,
                         np.concatenate([index.thumbnails, *thumbnails]),
                         np.concatenate([index.offsets, offsets]).astype(np.int64))
  write(trained.workdir / NEIGHBOURS_FILE, grown)
  trained.neighbour_index = grown
  return grown
