"""Predict the labels of photos with a trained model (`artclf.predict`): one per task of the
run's scheme (culture, medium and period for the shared set's runs).

  import artclf
  results = artclf.predict(["statue.jpg", pil_image, rgb_array], workdir="checkpoints/cpu_quick")
  results[0]["culture"]  # {'label': 'egyptian', 'probability': 0.93, 'distribution': {...}}
  results[0]["unfamiliar"]  # True: the photo is unlike the training photos (see below)

A file is read and decoded exactly as `python -m artclf.evaluate` reads the dataset's
images (`artclf.data.transforms.eval_view`), so a photo gets the same answer from both.
Collections of files: `artclf.serve.collection` (what `python -m artclf.predict` runs).

Every result also carries `familiarity` (0 to 1: the share of validation photos that
looked less familiar to the model) and `unfamiliar` (True when familiarity is below
1 - config.familiarity.val_pass_rate, 0.05 by default): such a photo is unlike anything
the model was trained on, and its labels deserve little trust whatever their
probabilities (`artclf.eval.familiarity`). Both are None for a run trained without it.

`neighbours=k` adds the k training photos nearest to each photo in the space the heads
read, with their labels and catalogue fields: what the answer leans on
(`artclf.run.neighbours`).
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from artclf.data import images as image_io

ImageInput = Any  # a path (str / PathLike), a file's bytes, a PIL image, or an RGB/grey array


@functools.lru_cache(maxsize=4)
def _load_cached(workdir: str):
  from artclf.run import trained  # pylint: disable=import-outside-toplevel  # starts JAX
  return trained.load(workdir)


def load_model(workdir: str | os.PathLike):
  """The trained model of `workdir`, loaded and compiled once per process."""
  return _load_cached(str(pathlib.Path(workdir).resolve()))


def read_input(image: ImageInput) -> bytes | Image.Image:
  """What `TrainedModel.view` takes: a file's bytes, or an RGB PIL image.

  Raises ValueError (or TypeError for an unsupported type) with a message naming the
  problem; URLs are not fetched.
  """
  if isinstance(image, Image.Image):
    return image_io.to_rgb(image)
  if isinstance(image, (bytes, bytearray, memoryview)):
    return bytes(image)  # an encoded file, e.g. an upload
  if isinstance(image, np.ndarray):
    return array_to_picture(image)
  if isinstance(image, (str, os.PathLike)):
    text = os.fspath(image)
    if "://" in text:
      raise ValueError(f"{text}: predict reads local files, not URLs; download the image first")
    try:
      return pathlib.Path(text).read_bytes()
    except OSError as error:
      raise ValueError(f"cannot read {text}: {error.strerror or error}") from None
  raise TypeError(f"cannot predict on a {type(image).__name__}: give a path, a file's bytes, a PIL "
                  "image or an array")


def to_picture(image: ImageInput) -> Image.Image:
  """Any supported input -> an upright RGB PIL image (ValueError if it cannot be read)."""
  data = read_input(image)
  return image_io.decode_image(data) if isinstance(data, bytes) else data


def array_to_picture(array: np.ndarray) -> Image.Image:
  """An RGB or grey array -> RGB PIL image, scaling its dtype's range to 0-255.

  uint8 as is; uint16 from 0-65535; bool as black and white; other integers must lie in
  0-255; floats in [0, 1] are scaled by 255, floats up to 255 taken as they are.
  """
  shape = array.shape
  if array.ndim == 3 and shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and shape[-1] not in (3, 4)):
    raise ValueError(f"an image array must be [H, W], [H, W, 3] or [H, W, 4], not {shape}")
  if array.size == 0:
    raise ValueError(f"an image array of shape {shape} holds no pixels")
  if array.dtype == np.bool_:
    array = array.astype(np.uint8) * 255
  elif array.dtype == np.uint16:
    array = np.round(array.astype(np.float64) * (255 / 65535)).astype(np.uint8)
  elif np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8:
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
      raise ValueError(f"a {array.dtype} image array must hold values in 0-255, not "
                       f"{low}..{high} (pass uint16 for 16-bit images)")
    array = array.astype(np.uint8)
  elif np.issubdtype(array.dtype, np.floating):
    if not np.isfinite(array).all():
      raise ValueError("the image array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
      raise ValueError(f"a float image array must hold values in [0, 1] or [0, 255], not "
                       f"{low:g}..{high:g}")
    array = np.round(array * 255.0 if high <= 1.0 else array).astype(np.uint8)
  elif array.dtype != np.uint8:
    raise ValueError(f"an image array of dtype {array.dtype} is not supported")
  return image_io.to_rgb(Image.fromarray(array))


def result_of(probs: dict[str, np.ndarray], row: int, scheme, familiarity=None) -> dict:
  """{task: {'label', 'probability', 'distribution'}, 'familiarity', 'unfamiliar'} of one
  row of probabilities under the run's scheme; familiarity: None or the (scores, flags)
  of every row."""
  result = {}
  for task in scheme.tasks:
    names = scheme.classes[task]
    distribution = {name: float(p) for name, p in zip(names, probs[task][row])}
    best = int(np.argmax(probs[task][row]))
    result[task] = {"label": names[best], "probability": float(probs[task][row][best]),
                    "distribution": distribution}
  result["familiarity"] = None if familiarity is None else round(float(familiarity[0][row]), 6)
  result["unfamiliar"] = None if familiarity is None else bool(familiarity[1][row])
  return result


def results_of_views(model, views: np.ndarray, flip_tta: bool | None = None,
                     calibrated: bool = True, neighbours: int = 0) -> list[dict]:
  """One result (see `result_of`) per evaluation view [N, S, S, 3], from one forward pass;
  with `neighbours` > 0, each also lists that many nearest training photos."""
  outputs = model.outputs(views, flip_tta=flip_tta)
  probs = model.calibrate(outputs["logits"], calibrated)
  familiarity = model.familiarity_of(outputs)
  results = [result_of(probs, row, model.scheme, familiarity) for row in range(len(views))]
  if neighbours > 0:
    for result, found in zip(results, nearest_training_photos(model, outputs, neighbours)):
      result["neighbours"] = found
  return results


def nearest_training_photos(model, outputs: dict, k: int) -> list[list[dict]]:
  """Per row, the k nearest training photos (`artclf.run.neighbours`): each one's entry
  (row, image, object_id, museum, title, credit, labels) and cosine similarity."""
  from artclf.run import neighbours as neighbours_lib  # pylint: disable=import-outside-toplevel
  index = neighbours_lib.index_for(model)
  if index is None:
    return [[] for _ in range(len(outputs["pooled"]))]
  return [[{**index.entry(row), "similarity": similarity} for row, similarity in found]
          for found in index.nearest(outputs["pooled"], k)]


def predict(images: ImageInput | Sequence[ImageInput], workdir: str | os.PathLike | None = None,
            model=None, flip_tta: bool | None = None, calibrated: bool = True,
            neighbours: int = 0):
  """Labels and probabilities for one image or many.

  Args:
    images: a path, a file's bytes, a PIL image or an array (H x W x 3 RGB; uint8,
      uint16, or floats in [0, 1]), or a list of them, or an N x H x W x 3 array. Paths
      and bytes are decoded as evaluate decodes the dataset's files.
    workdir: a training workdir (its best checkpoint is used), or
    model: an already loaded `artclf.run.trained.TrainedModel`.
    flip_tta: average with the horizontally mirrored image (None: as calibrated).
    calibrated: apply the temperatures fitted by `python -m artclf.evaluate`.
    neighbours: also return, under 'neighbours', this many nearest training photos
      (cosine on the pooled vectors the heads read), each a dict of 'row', 'image' (its
      path in the training data), 'object_id', 'museum', 'title', 'credit', 'labels'
      ({task: class or ''}) and 'similarity'.

  Returns:
    For one image, a dict {task: {'label', 'probability', 'distribution'}, 'familiarity',
    'unfamiliar'} with one entry per task of the run; for a list, a list of such dicts
    in the same order.

  Raises:
    ValueError naming the input (its index in a list) that cannot be read.
  """
  if model is None:
    if workdir is None:
      raise ValueError("predict needs workdir=... (a training run) or model=...")
    model = load_model(workdir)
  # A list or tuple, or a 4-D array, is many images; anything else is one.
  single = not (isinstance(images, (list, tuple)) or
                (isinstance(images, np.ndarray) and images.ndim == 4))
  batch = [images] if single else list(images)
  if not batch:
    return []
  views = []
  for index, image in enumerate(batch):
    try:
      views.append(model.view(read_input(image)))
    except ValueError as error:
      if single:
        raise
      name = f" ({os.fspath(image)})" if isinstance(image, (str, os.PathLike)) else ""
      raise ValueError(f"input {index}{name}: {error}") from None
  results = results_of_views(model, np.stack(views), flip_tta, calibrated, neighbours)
  return results[0] if single else results
