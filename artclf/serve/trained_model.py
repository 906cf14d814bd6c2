"""A trained model loaded from a workdir, for evaluation and prediction.

Reads WORKDIR/config.json and the best checkpoint (WORKDIR/best), rebuilds the network on
whatever devices this machine has (a checkpoint trained on a GPU loads on a CPU), and
runs it through the one inference loop (`artclf.eval.inference`) over this machine's
devices, compiling the forward pass once per padded batch size. Per-head temperatures
fitted by `artclf.evaluate` (WORKDIR/calibration.json) are applied to the probabilities
when present; they were fitted with or without flip test-time augmentation, and
prediction follows the same choice unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from artclf import labels
from artclf.data import transforms
from artclf.eval import calibration, inference
from artclf.eval import familiarity as familiarity_lib
from artclf.mesh import data_sharded, make_mesh, put_replicated, replicated
from artclf.models import classifier as model_lib
from artclf.train import checkpoints

CALIBRATION_FILE = "calibration.json"


@dataclasses.dataclass
class TrainedModel:
  model: model_lib.ArtClassifier
  config: ml_collections.ConfigDict
  workdir: pathlib.Path | None = None
  temperatures: dict[str, float] = dataclasses.field(
      default_factory=lambda: {task: 1.0 for task in labels.TASKS})
  batch_size: int = 16
  # Whether the temperatures were fitted on flip-TTA logits (calibration.json).
  calibrated_flip_tta: bool = False
  familiarity: familiarity_lib.Familiarity | None = None

  def __post_init__(self):
    # This machine's devices only: prediction never spans hosts.
    self.mesh = make_mesh(jax.local_devices())
    graphdef, state = nnx.split(self.model)
    self._state = put_replicated(state, self.mesh)

    @functools.partial(jax.jit, static_argnums=2, out_shardings=data_sharded(self.mesh))
    def forward(state, images, flip_tta: bool):
      model = nnx.merge(graphdef, state)
      logits, pooled = model.logits_and_pooled(images)
      if flip_tta:
        mirrored = model(images[:, :, ::-1, :])
        logits = {task: (logits[task] + mirrored[task]) / 2 for task in logits}
      return {"logits": logits, "pooled": pooled}

    self._forward = forward

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

  def apply(self, flip_tta: bool = False) -> Callable:
    """inputs {'image': global uint8 views} -> logits, for `inference` loops."""
    return lambda inputs: self._forward(self._state, inputs["image"], flip_tta)["logits"]

  def apply_outputs(self, flip_tta: bool = False) -> Callable:
    """inputs {'image': ...} -> {'logits': {task: ...}, 'pooled': vectors} from one pass."""
    return lambda inputs: self._forward(self._state, inputs["image"], flip_tta)

  def resolve_flip_tta(self, flip_tta: bool | None) -> bool:
    """None means: as the temperatures were fitted."""
    if flip_tta is None:
      return self.calibrated_flip_tta
    if flip_tta != self.calibrated_flip_tta and self.workdir is not None and any(
        t != 1.0 for t in self.temperatures.values()):
      logging.warning("the temperatures in %s were fitted %s flip TTA; predicting %s it",
                      self.workdir / CALIBRATION_FILE,
                      "with" if self.calibrated_flip_tta else "without",
                      "with" if flip_tta else "without")
    return flip_tta

  def outputs(self, views: np.ndarray, flip_tta: bool | None = None) -> dict:
    """{'logits': {task: [N, 3]}, 'pooled': [N, D]} of uint8 RGB views [N, S, S, 3].

    Flip TTA averages the logits with the mirror's; the pooled vectors are the view's own.
    """
    views = np.asarray(views)
    if not len(views):
      return {"logits": {task: np.zeros((0, labels.num_classes(task)), np.float32)
                         for task in labels.TASKS},
              "pooled": np.zeros((0, self.model.pooled_features), np.float32)}
    chunks = ((({"image": views[i:i + self.batch_size]}), len(views[i:i + self.batch_size]))
              for i in range(0, len(views), self.batch_size))
    parts = list(inference.iter_forward(self.apply_outputs(self.resolve_flip_tta(flip_tta)),
                                        chunks, self.mesh, self.local_batch_size, bucketed=True))
    return jax.tree.map(lambda *xs: np.concatenate(xs).astype(np.float32), *parts)

  def logits(self, views: np.ndarray, flip_tta: bool | None = None) -> dict[str, np.ndarray]:
    """Logits {task: [N, 3]} of uint8 RGB views [N, S, S, 3]; flip TTA averages with the mirror."""
    return self.outputs(views, flip_tta)["logits"]

  def familiarity_of(self, outputs: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(familiarity [N] in [0, 1], unfamiliar [N] bools) of `outputs`, or None when the
    run has no fitted familiarity (WORKDIR/familiarity.npz, written by training)."""
    if self.familiarity is None:
      return None
    score = self.familiarity.familiarity(self.familiarity.raw(outputs["logits"], outputs["pooled"]))
    return score, self.familiarity.unfamiliar(score)

  def probabilities(self, views: np.ndarray, flip_tta: bool | None = None,
                    calibrated: bool = True) -> dict[str, np.ndarray]:
    return self.calibrate(self.logits(views, flip_tta), calibrated)

  def calibrate(self, logits: dict[str, np.ndarray], calibrated: bool = True) -> dict:
    """Probabilities from logits, with the fitted temperatures if `calibrated`."""
    return {task: calibration.softmax(calibration.apply_temperature(
        logits[task], self.temperatures[task] if calibrated else 1.0)) for task in labels.TASKS}


def load_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  path = pathlib.Path(workdir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir?")
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except ValueError as error:
    raise ValueError(f"{path} is not a valid config ({error})") from None


def load(workdir: str | os.PathLike, batch_size: int = 16) -> TrainedModel:
  """The best checkpoint of a training run, ready to predict."""
  workdir = pathlib.Path(workdir).resolve()
  config = load_config(workdir)
  spec = model_lib.ModelSpec.from_config(config.model)
  model = nnx.eval_shape(lambda: model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0)))
  state = nnx.state(model)
  # Restore onto this machine's devices, whatever the checkpoint was saved from (a GPU
  # or a mesh of several): the saved shardings are not looked at.
  sharding = replicated(make_mesh(jax.local_devices()))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          nnx.to_pure_dict(state))
  try:
    restored = checkpoints.restore_best_state(workdir, abstract)
  except checkpoints.CheckpointMismatch as error:
    raise ValueError(
        f"the best checkpoint does not fit {workdir / 'config.json'} (was it edited after "
        f"training?): {error}") from None
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(model, state)
  temperatures, flip_tta = {task: 1.0 for task in labels.TASKS}, False
  calibration_path = workdir / CALIBRATION_FILE
  if calibration_path.exists():
    fitted = json.loads(calibration_path.read_text())
    temperatures.update(fitted["temperatures"])
    flip_tta = bool(fitted.get("flip_tta", False))
  familiarity_path = workdir / familiarity_lib.FAMILIARITY_FILE
  familiarity = None
  if familiarity_path.exists():
    try:
      familiarity = familiarity_lib.Familiarity.load(familiarity_path)
    except (OSError, ValueError, KeyError) as error:
      logging.warning("%s cannot be read (%s): predictions carry no familiarity",
                      familiarity_path, error)
  return TrainedModel(model, config, workdir, temperatures, batch_size, flip_tta, familiarity)
