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

from artclf.run import neighbours as neighbours_lib
from artclf.serve import gradcam, neighbour_images, runs
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

  def predict(self, images: Sequence[bytes | Image.Image], neighbours: int = 0) -> list[dict]:
    """One JSON-safe dict per image: predict's fields and `low_confidence` (a list of tasks);
    with `neighbours`, that many nearest training photos (`public_neighbour`s).

    Pass the uploaded files' bytes: they are then decoded exactly as `artclf.predict`
    and `artclf.evaluate` decode files.
    """
    with self._lock:
      model = self.model
      results = predict_lib.predict(list(images), model=model, flip_tta=self.flip_tta,
                                    neighbours=neighbours)
    return self._answers(results, model, neighbours)

  def predict_views(self, views: Sequence[np.ndarray], neighbours: int = 0) -> list[dict]:
    """As `predict`, of evaluation views already made (`TrainedModel.view` of the files)."""
    with self._lock:
      model = self.model
      results = predict_lib.results_of_views(model, np.stack(views), self.flip_tta,
                                             neighbours=neighbours)
    return self._answers(results, model, neighbours)

  def _answers(self, results: list[dict], model, neighbours: int) -> list[dict]:
    out = []
    for result in results:
      item = to_jsonable(result)
      item["low_confidence"] = low_confidence_tasks(item, model.scheme.tasks,
                                                    self.low_confidence_threshold)
      if neighbours:
        run = model.workdir.name if model.workdir else ""
        item["neighbours"] = [neighbour_images.public_neighbour(n, run)
                              for n in item.get("neighbours", [])]
      out.append(item)
    return out

  @property
  def run_name(self) -> str:
    """The served run's folder name."""
    return self.model.workdir.name if self.model.workdir else ""

  def neighbour_thumbnail(self, row: int) -> bytes:
    """The JPEG thumbnail of the served run's training photo `row` (b'' if there is none)."""
    with self._lock:
      index = neighbours_lib.index_for(self.model)
    try:
      return index.thumbnail(row) if index is not None else b""
    except IndexError:
      return b""

  def swap(self, model, max_batch_size: int, related=()) -> float:
    """Serves `model` from now on, once it is compiled (requests meanwhile get the old
    one); returns the compile seconds. `related`: runs whose neighbours it may share
    (`artclf.run.neighbours.index_for`)."""
    neighbours_lib.index_for(model, related)
    fresh = ModelRunner(model, self.low_confidence_threshold, self.flip_tta, self.overlay_size)
    seconds = fresh.warm_up(max_batch_size)
    with self._lock:
      self.model = model
    return seconds

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
    neighbours_lib.index_for(self.model)  # read (or built, for a run without one) now
    return time.perf_counter() - start

  def health(self) -> dict:
    """What the model is: run name (the workdir's folder name; no absolute path: a page of
    another site must not learn the machine's folders), lineage (the runs it was adapted
    from, see `runs.lineage_of`), sha256 of its config.json, trunk, tasks and classes."""
    workdir = self.model.workdir
    config_path = workdir / "config.json" if workdir else None
    config_hash = (hashlib.sha256(config_path.read_bytes()).hexdigest()
                   if config_path and config_path.exists() else None)
    return {
        "status": "ok",
        "run": self.run_name,
        "lineage": runs.lineage_of(workdir) if workdir else [],
        "workdir": workdir.name if workdir else None,
        "config_hash": config_hash,
        "trunk": self.model.config.model.trunk,
        "image_size": self.model.image_size,
        "tasks": list(self.model.scheme.tasks),
        "classes": {task: list(names) for task, names in self.model.scheme.classes.items()},
        "temperatures": to_jsonable(dict(self.model.temperatures)),
        "flip_tta": self.flip_tta,
    }
