"""What a training phase reads: its batches, its validation inputs, its position.

Two sources behind one interface (`PhaseData`):
  * `ImageData`: augmented images from the grain pipeline; the steps run the whole
    network (frozen stages get no update and keep their BatchNorm statistics);
  * `CachedData`: the frozen stages' outputs, computed once per image view
    (`artclf.data.feature_cache`); the steps run only the trainable stages and the heads.
Both give every host its own block of each global batch, and validation rows for the
one inference loop (`artclf.inference`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import ml_collections
import numpy as np
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.data import dataset, feature_cache, feature_store, pipeline, transforms
from artclf.models import classifier as model_lib
from artclf.run import forward
from artclf.train import optimizer as optimizer_lib


@dataclasses.dataclass(frozen=True)
class PhasePlan:
  """One phase of a run: its settings, its first trainable stage, and its data source."""
  index: int
  config: ml_collections.ConfigDict
  first_trainable: int   # trunk stages below it are frozen
  use_cache: bool        # train on cached outputs of the frozen stages
  cache_stage: int = 0   # the stage whose inputs are cached (0: first_trainable)

  @property
  def start_stage(self) -> int:
    """Where the train and eval steps start: after the cached stages, or at the image."""
    return (self.cache_stage or self.first_trainable) if self.use_cache else 0


def plan_phases(config, num_stages: int, backend: str,
                pooled_stage: int | None = None) -> list[PhasePlan]:
  """The phases with epochs > 0, and whether each trains on cached features.

  A phase that trains the heads alone on a model without an SE block caches the pooled
  vectors (`pooled_stage`, see `ArtClassifier.pooled_stage`) rather than feature maps.
  """
  mode = config.feature_cache.enabled
  if mode not in ("auto", "always", "never"):
    raise ValueError(f"feature_cache.enabled={mode!r}: use 'auto', 'always' or 'never'")
  phases = []
  for index, phase_config in enumerate((config.phase1, config.phase2)):
    if phase_config.epochs <= 0:
      continue
    first = optimizer_lib.first_trainable_stage(phase_config.trainable, num_stages)
    use_cache = first > 0 and (mode == "always" or (mode == "auto" and backend == "cpu"))
    heads_alone = first == num_stages and pooled_stage is not None
    phases.append(PhasePlan(index, phase_config, first, use_cache,
                            pooled_stage if heads_alone else first))
  if not phases:
    raise ValueError("no phase has epochs > 0: set config.phase1.epochs")
  return phases


class PhaseData:
  """The interface: batches by step, validation rows, and the position to checkpoint."""
  num_val: int
  val_labels: dict[str, np.ndarray]

  def next_batch(self, step: int) -> dict:
    """This host's block of global batch number `step` of the phase."""
    raise NotImplementedError

  def load_val_rows(self, rows: np.ndarray) -> dict:
    """Inputs of validation rows `rows`, for `inference.forward_rows`."""
    raise NotImplementedError

  def train_pooled(self) -> dict[str, np.ndarray] | None:
    """{net name: [rows, D]} pooled final trunk features of the training views, when this
    source holds them (a cache of the whole trunk); None otherwise."""
    return None

  def state(self) -> dict:
    """The data position to save with a checkpoint (JSON)."""
    return {}

  def restore(self, state: dict) -> None:
    """Continues from a saved position."""

  def eval_view_rows(self, split: str) -> tuple[int, Callable] | None:
    """(start stage, load_rows) of the evaluation views of 'train' or 'val' in float32,
    if this phase holds them (the calibration and familiarity fits then read them)."""
    del split
    return None


def _sampling_max_weight(data_config) -> float | None:
  return data_config.sampling_max_weight or None


class ImageData(PhaseData):
  """Augmented images from the grain pipeline; the validation split's evaluation views."""

  def __init__(self, config, scheme: scheme_lib.LabelScheme, train: dataset.LabelledSplit,
               val: dataset.LabelledSplit):
    self.augment = transforms.from_config(config.data.augment)
    self.iterator = iter(pipeline.make_dataset(train, scheme, pipeline.PipelineConfig(
        batch_size=config.batch_size, seed=config.seed, augmentation=self.augment,
        sampling=config.data.sampling, sampling_power=config.data.sampling_power,
        sampling_max_weight=_sampling_max_weight(config.data),
        worker_count=config.data.worker_count, read_threads=config.data.read_threads)))
    self.val_source = val.source
    self.num_val = len(val)
    self.val_labels = val.labels

  def next_batch(self, step: int) -> dict:
    del step  # the iterator keeps its own position
    return next(self.iterator)

  def load_val_rows(self, rows: np.ndarray) -> dict:
    return transforms.eval_view_loader(self.val_source, self.augment)(rows)

  def state(self) -> dict:
    return self.iterator.get_state()

  def restore(self, state: dict) -> None:
    if state:
      self.iterator.set_state(state)


class FrozenFeatures:
  """The frozen stages' outputs of a split's image views, through the feature cache:
  FrozenFeatures(...)(split, views, dtype) -> {net name: [len(views), len(split), ...]}.

  Keyed by the records, views, image settings and frozen weights, so that training and
  `artclf.adapt` share what either computed. The evaluation view ([None]) is kept per
  photograph (`artclf.data.feature_store`, under feature_cache.dir/photos): any split of
  photographs seen before, or a collection's photographs (`photos`), costs no trunk pass.
  """

  def __init__(self, config, plan: PhasePlan, model: model_lib.ArtClassifier, mesh,
               local_batch_size: int):
    self.config, self.plan, self.mesh, self.local_batch_size = config, plan, mesh, local_batch_size
    self.augment = transforms.from_config(config.data.augment)
    self.apply = forward.jit_frozen_features(model, plan.start_stage, mesh)
    # The trunk's frozen state alone shapes the features: the heads' statistics (set by
    # standardisation after this, or taught by adapt) must not change the cache key.
    self.frozen = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.state(
        model, nnx.All(nnx.PathContains("trunk"), nnx.Not(nnx.All(
            nnx.Param, optimizer_lib.trainable_filter(plan.config.trainable,
                                                      model.num_stages)))))))]
    self.frozen_digest = feature_cache.cache_key({}, self.frozen)
    # Pooled vectors are small: always float32; feature maps in config.feature_cache.dtype.
    self.train_dtype = np.dtype(np.float32 if plan.start_stage == model.pooled_stage
                                else config.feature_cache.dtype)

  def description(self, dtype) -> dict:
    """What the features depend on besides the records, the views and the frozen weights."""
    config = self.config
    return {"augment": dataclasses.asdict(self.augment), "seed": config.seed,
            "end_stage": self.plan.start_stage, "dtype": str(np.dtype(dtype)),
            # Only what shapes the frozen stages' outputs (the heads and SE block do not).
            "model": {k: config.model[k] for k in ("trunk", "compute_dtype", "submodels")}}

  def store(self, dtype) -> feature_store.FeatureStore:
    """The per-photograph store of evaluation-view features in `dtype` (in memory when
    config.feature_cache.dir is '')."""
    folder = self.config.feature_cache.dir
    return feature_store.FeatureStore(pathlib.Path(folder) / "photos" if folder else None,
                                      self.context(dtype))

  def context(self, dtype) -> str:
    """A digest of what a photograph's features depend on: frozen weights, view, dtype."""
    return feature_cache.cache_key({**self.description(dtype), "frozen": self.frozen_digest}, [])

  def photos(self, images: list[bytes], dtype, store=None) -> dict[str, np.ndarray]:
    """{net name: [len(images), ...]} of encoded photographs' evaluation views."""
    def compute(missing: list[bytes]) -> dict[str, np.ndarray]:
      computed = feature_cache.compute_features(
          self.apply, [{"image": data} for data in missing], [None], self.augment,
          self.config.seed, self.local_batch_size, self.mesh, dtype,
          what=f"features of {len(missing)} photographs")
      return {k: v[0] for k, v in computed.items()}
    return (store or self.store(dtype)).get(images, compute)

  def __call__(self, split: dataset.LabelledSplit, views, dtype) -> dict[str, np.ndarray]:
    config = self.config
    # One host: every photograph's file is its own (on several hosts the split's cache
    # below keeps the hosts' compute collective).
    if list(views) == [None] and config.feature_cache.dir and jax.process_count() == 1:
      images = [split.source[i]["image"] for i in range(len(split))]
      return {k: v[None] for k, v in self.photos(images, dtype).items()}
    key = feature_cache.cache_key(
        {"data": feature_cache.source_digest(split.source, split.labels), "views": views,
         **self.description(dtype)}, self.frozen)
    return feature_cache.load_or_compute(
        config.feature_cache.dir or None, key, lambda: feature_cache.compute_features(
            self.apply, split.source, views, self.augment, config.seed, self.local_batch_size,
            self.mesh, dtype, what=f"caching {split.name} features"))


class CachedData(PhaseData):
  """Training batches and validation rows from the cached outputs of the frozen stages."""

  def __init__(self, config, plan: PhasePlan, model: model_lib.ArtClassifier,
               scheme: scheme_lib.LabelScheme, train: dataset.LabelledSplit,
               val: dataset.LabelledSplit, mesh, local_batch_size: int):
    augmenting = transforms.from_config(config.data.augment).augments
    train_views = list(range(config.feature_cache.num_views)) if augmenting else [None]
    cached = FrozenFeatures(config, plan, model, mesh, local_batch_size)
    train_cache = cached(train, train_views, cached.train_dtype)
    self.start_stage = plan.start_stage
    self.train_views = train_cache  # every cached view of every training image
    # The evaluation view alone, in float32, is what the final fits read.
    self.train_cache = (train_cache if train_views == [None] and cached.train_dtype == np.float32
                        else None)
    # Axes pooled to give the vectors the heads read: none for cached pooled vectors, the
    # spatial ones for cached final maps; None where the cache holds an earlier stage.
    self.pooling_axes = {model.pooled_stage: (), model.num_stages: (2, 3)}.get(plan.start_stage)
    # Validation in float32: model selection sees what evaluate and predict compute.
    self.val_cache = cached(val, [None], np.float32)
    self.batches = feature_cache.CachedBatches(
        train_cache, train.labels, scheme, config.batch_size, config.seed,
        config.data.sampling, config.data.sampling_power, _sampling_max_weight(config.data))
    self.num_val = len(val)
    self.val_labels = val.labels

  def train_pooled(self) -> dict[str, np.ndarray] | None:
    if self.pooling_axes is None:
      return None
    return {name: np.asarray(f, np.float32).mean(axis=self.pooling_axes).reshape(-1, f.shape[-1])
            for name, f in self.train_views.items()}

  def next_batch(self, step: int) -> dict:
    return self.batches.batch(step, jax.process_index(), jax.process_count())

  def load_val_rows(self, rows: np.ndarray) -> dict:
    return _rows_of(self.val_cache, rows)

  def eval_view_rows(self, split: str) -> tuple[int, Callable] | None:
    cache = self.val_cache if split == "val" else self.train_cache
    if cache is None:
      return None
    return self.start_stage, lambda rows: _rows_of(cache, rows)


def _rows_of(cache: dict[str, np.ndarray], rows: np.ndarray) -> dict:
  """Inputs of rows `rows` of view 0 of a feature cache, in float32."""
  return {"features": {name: np.asarray(f[0, rows], np.float32) for name, f in cache.items()}}


def make_phase_data(config, plan: PhasePlan, model, scheme: scheme_lib.LabelScheme,
                    train: dataset.LabelledSplit, val: dataset.LabelledSplit, mesh,
                    local_batch_size: int) -> PhaseData:
  if plan.use_cache:
    return CachedData(config, plan, model, scheme, train, val, mesh, local_batch_size)
  return ImageData(config, scheme, train, val)
