"""A trained model loaded from a workdir, for evaluation and prediction.

Reads WORKDIR/config.json and the best checkpoint (WORKDIR/best), rebuilds the network on
whatever devices this machine has (a checkpoint trained on a GPU loads on a CPU), and
compiles the forward pass for a few padded batch sizes (powers of two), once each.
Per-head temperatures fitted by `artclf.evaluate` (WORKDIR/calibration.json) are applied
to the probabilities when present.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from PIL import Image

from artclf import labels
from artclf.data import transforms
from artclf.eval import calibration
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

  def __post_init__(self):
    graphdef, state = nnx.split(self.model)

    @jax.jit
    def forward(state, images):
      return nnx.merge(graphdef, state)(images)

    self._forward = forward
    self._state = state

  @functools.cached_property
  def augment(self) -> transforms.AugmentConfig:
    """The run's image settings; evaluation uses image_size and eval_resize_size."""
    return transforms.from_config(self.config.data.augment)

  @property
  def image_size(self) -> int:
    return self.augment.image_size

  def view(self, image: Image.Image) -> np.ndarray:
    """The evaluation view (uint8 RGB [S, S, 3]) of an RGB PIL image, as in training."""
    return transforms.eval_view(image, self.augment)

  def logits(self, views: np.ndarray, flip_tta: bool = False) -> dict[str, np.ndarray]:
    """Logits {task: [N, 3]} of uint8 RGB views [N, S, S, 3]; flip TTA averages with the mirror."""
    inputs = transforms.caffe_normalize(views)
    out = self._batched_logits(inputs)
    if flip_tta:
      mirrored = self._batched_logits(inputs[:, :, ::-1, :])
      out = {task: (out[task] + mirrored[task]) / 2 for task in out}
    return out

  def _batched_logits(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
    parts = {task: [] for task in labels.TASKS}
    for start in range(0, len(inputs), self.batch_size):
      chunk = inputs[start:start + self.batch_size]
      # Pad to a power of two (at most batch_size): a handful of shapes, each compiled
      # once, and a single image does not pay for a whole batch.
      size = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())
      padded = np.zeros((size,) + inputs.shape[1:], np.float32)
      padded[:len(chunk)] = chunk
      out = self._forward(self._state, padded)
      for task in labels.TASKS:
        parts[task].append(np.asarray(out[task], np.float32)[:len(chunk)])
    return {task: np.concatenate(p) if p else np.zeros((0, 3), np.float32)
            for task, p in parts.items()}

  def probabilities(self, views: np.ndarray, flip_tta: bool = False,
                    calibrated: bool = True) -> dict[str, np.ndarray]:
    logits = self.logits(views, flip_tta)
    return {task: calibration.softmax(calibration.apply_temperature(
        logits[task], self.temperatures[task] if calibrated else 1.0)) for task in labels.TASKS}


def load_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  path = pathlib.Path(workdir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir?")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def load(workdir: str | os.PathLike, batch_size: int = 16) -> TrainedModel:
  """The best checkpoint of a training run, ready to predict."""
  workdir = pathlib.Path(workdir).resolve()
  config = load_config(workdir)
  spec = model_lib.ModelSpec.from_config(config.model)
  model = nnx.eval_shape(lambda: model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0)))
  state = nnx.state(model)
  # Restore onto this machine's first device, whatever the checkpoint was saved from
  # (a GPU or a mesh of several): the saved shardings are not looked at.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          nnx.to_pure_dict(state))
  restored = checkpoints.restore_best_state(workdir, abstract)
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, restored))
  nnx.update(model, state)
  temperatures = {task: 1.0 for task in labels.TASKS}
  calibration_path = workdir / CALIBRATION_FILE
  if calibration_path.exists():
    temperatures.update(json.loads(calibration_path.read_text())["temperatures"])
  return TrainedModel(model, config, workdir, temperatures, batch_size)
