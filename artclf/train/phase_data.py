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

import jax
import ml_collections
import numpy as np
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.data import dataset, feature_cache, pipeline, transforms
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

  @property
  def start_stage(self) -> int:
    """Where the train and eval steps start: after the cached stages, or at the image."""
    return self.first_trainable if self.use_cache else 0


def plan_phases(config, num_stages: int, backend: str) -> list[PhasePlan]:
  """The phases with epochs > 0, and whether each trains on cached features."""
  mode = config.feature_cache.enabled
  if mode not in ("auto", "always", "never"):
    raise ValueError(f"feature_cache.enabled={mode!r}: use 'auto', 'always' or 'never'")
  phases = []
  for index, phase_config in enumerate((config.phase1, config.phase2)):
    if phase_config.epochs <= 0:
      continue
    first = optimizer_lib.first_trainable_stage(phase_config.trainable, num_stages)
    use_cache = first > 0 and (mode == "always" or (mode == "auto" and backend == "cpu"))
    phases.append(PhasePlan(index, phase_config, first, use_cache))
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


class CachedData(PhaseData):
  """Training batches and validation rows from the cached outputs of the frozen stages."""

  def __init__(self, config, plan: PhasePlan, model: model_lib.ArtClassifier,
               scheme: scheme_lib.LabelScheme, train: dataset.LabelledSplit,
               val: dataset.LabelledSplit, mesh, local_batch_size: int):
    aug = transforms.from_config(config.data.augment)
    apply = forward.jit_frozen_features(model, plan.start_stage, mesh)
    frozen = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.state(
        model, nnx.Not(nnx.All(nnx.Param, optimizer_lib.trainable_filter(
            plan.config.trainable, model.num_stages))))))]
    augmenting = _augmenting(aug)
    train_views = list(range(config.feature_cache.num_views)) if augmenting else [None]

    def cached(split: dataset.LabelledSplit, views, dtype) -> dict[str, np.ndarray]:
      key = feature_cache.cache_key(
          {"data": feature_cache.source_digest(split.source, split.labels), "views": views,
           "augment": dataclasses.asdict(aug), "seed": config.seed,
           "end_stage": plan.start_stage, "dtype": str(np.dtype(dtype)),
           # Only what shapes the frozen stages' outputs (the heads and SE block do not).
           "model": {k: config.model[k] for k in ("trunk", "compute_dtype", "submodels")}},
          frozen)
      return feature_cache.load_or_compute(
          config.feature_cache.dir or None, key, lambda: feature_cache.compute_features(
              apply, split.source, views, aug, config.seed, local_batch_size, mesh, dtype,
              what=f"caching {split.name} features"))

    train_cache = cached(train, train_views, np.dtype(config.feature_cache.dtype))
    # Validation in float32: model selection sees what evaluate and predict compute.
    self.val_cache = cached(val, [None], np.float32)
    self.batches = feature_cache.CachedBatches(
        train_cache, train.labels, scheme, config.batch_size, config.seed,
        config.data.sampling, config.data.sampling_power, _sampling_max_weight(config.data))
    self.num_val = len(val)
    self.val_labels = val.labels
    self.whole_trunk = plan.start_stage == model.num_stages
    self.train_cache = train_cache

  def train_pooled(self) -> dict[str, np.ndarray] | None:
    if not self.whole_trunk:
      return None
    return {name: np.asarray(f, np.float32).mean(axis=(2, 3)).reshape(-1, f.shape[-1])
            for name, f in self.train_cache.items()}

  def next_batch(self, step: int) -> dict:
    return self.batches.batch(step, jax.process_index(), jax.process_count())

  def load_val_rows(self, rows: np.ndarray) -> dict:
    return {"features": {name: np.asarray(f[0, rows], np.float32)
                         for name, f in self.val_cache.items()}}


def _augmenting(aug: transforms.AugmentConfig) -> bool:
  return (aug.random_crop or aug.horizontal_flip or aug.max_rotation_deg > 0 or aug.brightness > 0
          or aug.contrast > 0 or aug.saturation > 0 or aug.grayscale_probability > 0)


def make_phase_data(config, plan: PhasePlan, model, scheme: scheme_lib.LabelScheme,
                    train: dataset.LabelledSplit, val: dataset.LabelledSplit, mesh,
                    local_batch_size: int) -> PhaseData:
  if plan.use_cache:
    return CachedData(config, plan, model, scheme, train, val, mesh, local_batch_size)
  return ImageData(config, scheme, train, val)
