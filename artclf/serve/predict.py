"""Predict culture, medium and period of photos with a trained model (`artclf.predict`).

From Python:
  import artclf
  results = artclf.predict(["statue.jpg", pil_image, rgb_array], workdir="checkpoints/cpu_quick")
  results[0]["culture"]  # {'label': 'egyptian', 'probability': 0.93, 'distribution': {...}}

From the shell:
  python -m artclf.predict --workdir=checkpoints/cpu_quick photo.jpg folder/ [--output=out.csv]
  python -m artclf.predict --workdir=... --explain=heatmaps/ photo.jpg   # Grad-CAM overlays

An unreadable file is reported on its own line and the rest are still predicted; the
exit status is 1 if any input failed.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import pathlib
import sys
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from artclf import labels

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

ImageInput = Any  # a path (str / PathLike), a PIL image, or an RGB/grey array


@functools.lru_cache(maxsize=4)
def _load_cached(workdir: str):
  from artclf.serve import trained_model  # Deferred: pulls in JAX.
  return trained_model.load(workdir)


def load_model(workdir: str | os.PathLike):
  """The trained model of `workdir`, loaded and compiled once per process."""
  return _load_cached(str(pathlib.Path(workdir).resolve()))


def to_picture(image: ImageInput) -> Image.Image:
  """Any supported input -> an upright RGB PIL image (raises ValueError if it cannot be read)."""
  from artclf.data import images as image_io
  if isinstance(image, Image.Image):
    return image_io.to_rgb(image)
  if isinstance(image, np.ndarray):
    array = image
    if array.dtype != np.uint8:
      if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
        array = array * 255.0
      array = np.clip(array, 0, 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
      array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
      raise ValueError(f"an image array must be [H, W], [H, W, 3] or [H, W, 4], not {image.shape}")
    return image_io.to_rgb(Image.fromarray(array))
  if isinstance(image, (str, os.PathLike)):
    path = pathlib.Path(image)
    try:
      data = path.read_bytes()
    except OSError as error:
      raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    return image_io.decode_image(data)  # ImageDecodeError is a ValueError.
  raise TypeError(f"cannot predict on a {type(image).__name__}: give a path, a PIL image or an array")


def _result(probs: dict[str, np.ndarray], row: int) -> dict:
  result = {}
  for task in labels.TASKS:
    distribution = {name: float(p) for name, p in zip(labels.CLASSES[task], probs[task][row])}
    best = int(np.argmax(probs[task][row]))
    result[task] = {"label": labels.CLASSES[task][best], "probability": float(probs[task][row][best]),
                    "distribution": distribution}
  return result


def predict(images: ImageInput | Sequence[ImageInput], workdir: str | os.PathLike | None = None,
            model=None, flip_tta: bool = False, calibrated: bool = True):
  """Labels and probabilities for one image or many.

  Args:
    images: a path, PIL image or array (H x W x 3 RGB, uint8 or floats in [0, 1]), or a
      list of them, or an N x H x W x 3 array.
    workdir: a training workdir (its best checkpoint is used), or
    model: an already loaded `artclf.serve.trained_model.TrainedModel`.
    flip_tta: average with the horizontally mirrored image.
    calibrated: apply the temperatures fitted by `python -m artclf.evaluate`.

  Returns:
    For one image, a dict {task: {'label', 'probability', 'distribution'}}; for a
    list, a list of such dicts in the same order.
  """
  if model is None:
    if workdir is None:
      raise ValueError("predict needs workdir=... (a training run) or model=...")
    model = load_model(workdir)
  # A list or tuple, or a 4-D array, is many images; anything else is one.
  single = not (isinstance(images, (list, tuple)) or
                (isinstance(images, np.ndarray) and images.ndim == 4))
  batch = [images] if single else list(images)
  views = np.stack([model.view(to_picture(image)) for image in batch]) if batch else None
  if views is None:
    return []
  probs = model.probabilities(views, flip_tta=flip_tta, calibrated=calibrated)
  results = [_result(probs, row) for row in range(len(batch))]
  return results[0] if single else results


def expand_inputs(paths: Iterable[str]) -> list[pathlib.Path]:
  """Files as given, and the image files inside folders (sorted, recursively)."""
  found = []
  for raw in paths:
    path = pathlib.Path(raw)
    if path.is_dir():
      found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    else:
      found.append(path)
  return found


def format_table(rows: list[tuple[str, dict | None, str]]) -> str:
  """A readable table: one line per image, label (probability) per task, or the error."""
  header = ["image"] + list(labels.TASKS)
  lines = []
  for name, result, error in rows:
    if result is None:
      lines.append([name, f"ERROR: {error}"])
    else:
      lines.append([name] + [f"{result[t]['label']} ({result[t]['probability']:.2f})" for t in labels.TASKS])
  width = max([len(header[0])] + [len(line[0]) for line in lines])
  col = max(len("architecture (1.00)"), 12)
  out = [header[0].ljust(width) + "  " + "  ".join(h.ljust(col) for h in header[1:])]
  for line in lines:
    out.append(line[0].ljust(width) + "  " + "  ".join(c.ljust(col) for c in line[1:]))
  return "\n".join(out)


def write_output(rows, path: pathlib.Path) -> None:
  """CSV (one column per class probability) or JSON, chosen by the file suffix."""
  if path.suffix.lower() == ".json":
    records = [{"image": name, "error": error or None, **(result or {})} for name, result, error in rows]
    path.write_text(json.dumps(records, indent=2))
    return
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    columns = ["image", "error"]
    for task in labels.TASKS:
      columns += [task, f"{task}_probability"] + [f"{task}_p_{c}" for c in labels.CLASSES[task]]
    writer.writerow(columns)
    for name, result, error in rows:
      row = [name, error]
      for task in labels.TASKS:
        if result is None:
          row += [""] * (2 + len(labels.CLASSES[task]))
        else:
          row += [result[task]["label"], f"{result[task]['probability']:.6f}"]
          row += [f"{result[task]['distribution'][c]:.6f}" for c in labels.CLASSES[task]]
      writer.writerow(row)


def run_cli(paths: Sequence[str], workdir: str, output: str | None = None,
            explain_dir: str | None = None, flip_tta: bool = False, stream=sys.stdout) -> int:
  """The CLI's work, importable for tests: returns the exit status."""
  files = expand_inputs(paths)
  if not files:
    print("no images found in the given paths", file=sys.stderr)
    return 1
  model = load_model(workdir)
  rows: list[tuple[str, dict | None, str]] = []
  pictures = {}
  for path in files:
    try:
      pictures[str(path)] = to_picture(path)
    except (ValueError, TypeError) as error:
      rows.append((str(path), None, str(error)))
  predicted = dict(zip(pictures, predict(list(pictures.values()), model=model, flip_tta=flip_tta)))
  order = {str(p): i for i, p in enumerate(files)}
  rows += [(name, result, "") for name, result in predicted.items()]
  rows.sort(key=lambda r: order[r[0]])
  if explain_dir:
    from artclf.serve import gradcam
    out_dir = pathlib.Path(explain_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, (name, picture) in enumerate(pictures.items()):
      for task, heatmap in gradcam.explain(model, picture).items():
        stem = f"{order[name]:04d}_{pathlib.Path(name).stem}"
        gradcam.overlay(picture, heatmap).save(out_dir / f"{stem}_{task}.png")
  print(format_table(rows), file=stream)
  if output:
    write_output(rows, pathlib.Path(output))
  failed = sum(1 for _, result, _ in rows if result is None)
  if failed:
    print(f"{failed} of {len(rows)} inputs could not be read", file=sys.stderr)
  return 1 if failed else 0
