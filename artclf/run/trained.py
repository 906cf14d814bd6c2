"""A trained run loaded from its workdir: the model, its scheme, calibration and familiarity.

  trained = trained.load("checkpoints/cpu_quick")
  outputs = trained.outputs(views)                # {'logits': {task: ...}, 'pooled': ...}
  probs = trained.calibrate(outputs["logits"])    # with the run's temperatures

Reads WORKDIR/config.json (its scheme among it), the best checkpoint (checked against
the config it was trained with and its saved digest), calibration.json and
familiarity.npz; rebuilds the network on whatever devices this machine has (a checkpoint
trained on a GPU loads on a CPU) and runs it through the one inference loop
(`artclf.inference`) with the one forward pass (`artclf.run.forward`), compiled once per
padded batch size. Evaluate, predict, the page, crossval and adapt all load runs here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import inference
from artclf import scheme as scheme_lib
from artclf.data import transforms
from artclf.eval import calibration
from artclf.eval import familiarity as familiarity_lib
from artclf.mesh import make_mesh, put_replicated, replicated
from artclf.models import classifier as model_lib
from artclf.run import checkpoint, files, forward


@dataclasses.dataclass
class TrainedModel:
  model: model_lib.ArtClassifier
  config: ml_collections.ConfigDict
  scheme: scheme_lib.LabelScheme
  workdir: pathlib.Path | None = None
  temperatures: dict[str, float] | None = None  # None: 1 for every task
  batch_size: int = 16
  # Whether the temperatures were fitted on flip-TTA logits (calibration.json).
  calibrated_flip_tta: bool = False
  familiarity: familiarity_lib.Familiarity | None = None
  best_step: int | None = None
  # calibration.json as read: where the temperatures were fitted, and the errors there.
  calibration_record: dict | None = None
  # The nearest-training-photos index, once read (`artclf.run.neighbours.index_for`).
  neighbour_index: Any = None

  def __post_init__(self):
    if self.temperatures is None:
      self.temperatures = {task: 1.0 for task in self.scheme.tasks}
    # This machine's devices only: prediction never spans hosts.
    self.mesh = make_mesh(jax.local_devices())
    self._graphdef, state = nnx.split(self.model)
    self._state = put_replicated(state, self.mesh)
    self._compiled = {}  # flip_tta -> the jitted forward

  def _forward(self, flip_tta: bool) -> Callable:
    if flip_tta not in self._compiled:
      self._compiled[flip_tta] = forward.jit_outputs(self._graphdef, self.mesh, 0, flip_tta)
    return self._compiled[flip_tta]

  @property
  def local_batch_size(self) -> int:
    """batch_size rounded up to a multiple of this machine's devices."""
    devices = self.mesh.devices.size
    return -(-self.batch_size // devices) * devices

  @functools.cached_property
  def augment(self) -> transforms.AugmentConfig:
    """The run's image settings; evaluation uses image_size and eval_resize_size."""
    return transforms.from_config(self.config.data.augment)

  @property
  def image_size(self) -> int:
    return self.augment.image_size

  def view(self, image) -> np.ndarray:
    """The evaluation view (uint8 RGB [S, S, 3]) of encoded bytes or an RGB PIL image."""
    return transforms.eval_view(image, self.augment)

  def apply_outputs(self, flip_tta: bool = False) -> Callable:
    """inputs {'image': global uint8 views} -> {'logits', 'pooled'}, for `inference` loops."""
    run = self._forward(bool(flip_tta))
    return lambda inputs: run(self._state, inputs)

  def resolve_flip_tta(self, flip_tta: bool | None) -> bool:
    """None means: as the temperatures were fitted."""
    if flip_tta is None:
      return self.calibrated_flip_tta
    if flip_tta != self.calibrated_flip_tta and self.workdir is not None and any(
        t != 1.0 for t in self.temperatures.values()):
      logging.warning("the temperatures in %s were fitted %s flip TTA; predicting %s it",
                      self.workdir / files.CALIBRATION_FILE,
                      "with" if self.calibrated_flip_tta else "without",
                      "with" if flip_tta else "without")
    return flip_tta

  def outputs(self, views: np.ndarray, flip_tta: bool | None = None) -> dict:
    """{'logits': {task: [N, C]}, 'pooled': [N, D]} of uint8 RGB views [N, S, S, 3]."""
    views = np.asarray(views)
    if not len(views):
      return {"logits": {task: np.zeros((0, self.scheme.num_classes(task)), np.float32)
                         for task in self.scheme.tasks},
              "pooled": np.zeros((0, self.model.pooled_features), np.float32)}
    chunks = ((({"image": views[i:i + self.batch_size]}), len(views[i:i + self.batch_size]))
              for i in range(0, len(views), self.batch_size))
    parts = list(inference.iter_forward(self.apply_outputs(self.resolve_flip_tta(flip_tta)),
                                        chunks, self.mesh, self.local_batch_size, bucketed=True))
    return jax.tree.map(lambda *xs: np.concatenate(xs).astype(np.float32), *parts)

  def logits(self, views: np.ndarray, flip_tta: bool | None = None) -> dict[str, np.ndarray]:
    """{task: [N, C]} logits of uint8 RGB views (`outputs` without the pooled vectors)."""
    return self.outputs(views, flip_tta)["logits"]

  def familiarity_of(self, outputs: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(familiarity [N] in [0, 1], unfamiliar [N] bools) of `outputs`, or None when the
    run has no fitted familiarity (WORKDIR/familiarity.npz)."""
    if self.familiarity is None:
      return None
    score = self.familiarity.familiarity(self.familiarity.raw(outputs["logits"], outputs["pooled"]))
    return score, self.familiarity.unfamiliar(score)

  def calibrate(self, logits: dict[str, np.ndarray], calibrated: bool = True) -> dict:
    """Probabilities from logits, with the fitted temperatures if `calibrated`."""
    return {task: calibration.softmax(calibration.apply_temperature(
        logits[task], self.temperatures[task] if calibrated else 1.0))
        for task in self.scheme.tasks}


def build_model(config, scheme: scheme_lib.LabelScheme, seed: int = 0,
                random_trunk: bool = True) -> model_lib.ArtClassifier:
  """The run's network, randomly initialised (weights are restored or loaded after); with
  placeholder trunk weights if not random_trunk (see trunks.placeholder_init)."""
  spec = model_lib.ModelSpec.from_config(config.model, scheme.heads)
  return model_lib.ArtClassifier(spec, rngs=nnx.Rngs(seed), random_trunk=random_trunk)


def restore_best_into(model: model_lib.ArtClassifier, workdir: pathlib.Path, mesh) -> dict:
  """Loads the best checkpoint's weights into `model` (replicated on `mesh`); returns its
  metadata."""
  sharding = replicated(mesh)
  state = nnx.state(model)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          nnx.to_pure_dict(state))
  restored, meta = checkpoint.restore_best(workdir, abstract)
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(model, state)
  return meta


def load(workdir: str | os.PathLike, batch_size: int = 16) -> TrainedModel:
  """The best checkpoint of a run, with its calibration and familiarity, ready to predict.

  Raises FileNotFoundError or ValueError (one line, naming the file) for a run that
  cannot be used.
  """
  workdir = pathlib.Path(workdir).resolve()
  config = files.read_config(workdir)
  scheme = files.scheme_of(config, workdir / files.CONFIG_FILE)
  try:
    model = nnx.eval_shape(lambda: build_model(config, scheme))
  except (TypeError, ValueError, KeyError) as error:
    raise files.RunFileError(f"{workdir / files.CONFIG_FILE} does not describe a model "
                             f"({str(error)[:200]})") from None
  # The config first: an edit that changes the model is then named as such.
  files.check_config_unchanged(workdir, config, checkpoint.read_best_meta(workdir).get("config"))
  try:
    meta = restore_best_into(model, workdir, make_mesh(jax.local_devices()))
  except checkpoint.CheckpointMismatch as error:
    raise files.RunFileError(
        f"the best checkpoint does not fit {workdir / files.CONFIG_FILE} (was it edited after "
        f"training?): {error}") from None
  temperatures, flip_tta, record = files.read_calibration(workdir, scheme)
  return TrainedModel(model, config, scheme, workdir, temperatures, batch_size, flip_tta,
                      _read_familiarity(workdir), meta.get("run", {}).get("best_step"), record)


def _read_familiarity(workdir: pathlib.Path) -> familiarity_lib.Familiarity | None:
  path = workdir / files.FAMILIARITY_FILE
  if not path.exists():
    return None
  try:
    return familiarity_lib.Familiarity.load(path)
  except Exception as error:  # pylint: disable=broad-except  # any damage: warn, go on
    logging.warning("%s cannot be read (%s): predictions carry no familiarity", path,
                    str(error)[:200])
    return None
