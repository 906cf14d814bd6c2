"""The one trained model a server holds: warmed up at start, used by one request at a time.

`predict` passes `artclf.predict`'s result dicts through untouched (new fields that
predict grows appear in the API by themselves), made JSON-safe, and adds the tasks whose
top probability is under the low-confidence threshold. Calls are serialised with a lock:
XLA already spreads one batch over every core, and running two at once would only make
both slower and the latency less predictable.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from typing import Any, Sequence

import numpy as np
from PIL import Image

from artclf.serve import gradcam
from artclf.serve import predict as predict_lib


def to_jsonable(value: Any) -> Any:
  """Numpy scalars and arrays inside dicts and lists -> plain Python values."""
  if isinstance(value, dict):
    return {str(key): to_jsonable(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(item) for item in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def low_confidence_tasks(result: dict, tasks, threshold: float) -> list[str]:
  return [task for task in tasks if result[task]["probability"] < threshold]


def png_data_url(picture: Image.Image) -> str:
  buffer = io.BytesIO()
  picture.save(buffer, "PNG", optimize=True)
  return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ModelRunner:
  """Predictions and Grad-CAM overlays from one `TrainedModel`."""

  def __init__(self, model, low_confidence_threshold: float, flip_tta: bool = False,
               overlay_size: int = 480):
    self.model = model
    self.low_confidence_threshold = low_confidence_threshold
    self.flip_tta = flip_tta
    self.overlay_size = overlay_size
    self._lock = threading.Lock()

  def predict(self, images: Sequence[bytes | Image.Image]) -> list[dict]:
    """One JSON-safe dict per image: predict's fields and `low_confidence` (a list of tasks).

    Pass the uploaded files' bytes: they are then decoded exactly as `artclf.predict`
    and `artclf.evaluate` decode files.
    """
    with self._lock:
      results = predict_lib.predict(list(images), model=self.model, flip_tta=self.flip_tta)
    return self._answers(results)

  def predict_views(self, views: Sequence[np.ndarray]) -> list[dict]:
    """As `predict`, of evaluation views already made (`TrainedModel.view` of the files)."""
    with self._lock:
      results = predict_lib.results_of_views(self.model, np.stack(views), self.flip_tta)
    return self._answers(results)

  def _answers(self, results: list[dict]) -> list[dict]:
    out = []
    for result in results:
      item = to_jsonable(result)
      item["low_confidence"] = low_confidence_tasks(item, self.model.scheme.tasks,
                                                    self.low_confidence_threshold)
      out.append(item)
    return out

  def explain(self, picture: Image.Image, view: np.ndarray | None = None) -> dict[str, str]:
    """{task: PNG data URL of the Grad-CAM overlay}, at most `overlay_size` px on a side.

    `view`, made from the file's bytes, is the view the model saw in `predict`; the
    picture is shrunk to the overlay's size first, and the maps made at that size.
    """
    shown = picture.copy()
    shown.thumbnail((self.overlay_size, self.overlay_size), Image.Resampling.LANCZOS)
    view = self.model.view(picture) if view is None else view
    with self._lock:
      heatmaps = gradcam.explain(self.model, shown, view)
    return {task: png_data_url(gradcam.overlay(shown, heatmap))
            for task, heatmap in heatmaps.items()}

  def warm_up(self, max_batch_size: int) -> float:
    """Compiles every padded batch size a request can use, and Grad-CAM; returns seconds."""
    start = time.perf_counter()
    size = self.model.image_size
    blank = Image.new("RGB", (size, size), (128, 128, 128))
    largest = min(max_batch_size, self.model.batch_size)
    batch = 1
    while True:
      self.predict([blank] * min(batch, largest))
      if batch >= largest:
        break
      batch *= 2
    self.explain(blank)
    return time.perf_counter() - start

  def health(self) -> dict:
    """What the model is: the workdir's folder name (no absolute path: a page of another
    site must not learn the machine's folders), sha256 of its config.json, trunk, tasks
    and classes."""
    workdir = self.model.workdir
    config_path = workdir / "config.json" if workdir else None
    config_hash = (hashlib.sha256(config_path.read_bytes()).hexdigest()
                   if config_path and config_path.exists() else None)
    return {
        "status": "ok",
        "workdir": workdir.name if workdir else None,
        "config_hash": config_hash,
        "trunk": self.model.config.model.trunk,
        "image_size": self.model.image_size,
        "tasks": list(self.model.scheme.tasks),
        "classes": {task: list(names) for task, names in self.model.scheme.classes.items()},
        "temperatures": to_jsonable(dict(self.model.temperatures)),
        "flip_tta": self.flip_tta,
    }
