"""Grad-CAM: where in the picture each head looked, from the trunk's last stage.

For a head's predicted class c, the gradient of its logit with respect to the last
stage's feature map A [h, w, K] gives one weight per channel (its spatial mean); the
map is ReLU(sum_k w_k A_k), scaled to [0, 1]. The map covers the model's centre crop;
it is placed back onto the full picture (zero outside the crop) at the picture's size, on
the part of it the view came from (`transforms.picture_box`: without its bars if the run
crops them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from PIL import Image

from artclf.data import transforms


def class_activation_maps(model, image_view: np.ndarray) -> dict[str, np.ndarray]:
  """{task: [h, w] map in [0, 1]} for one uint8 RGB view [S, S, 3], for each predicted class."""
  inputs = jnp.asarray(image_view[None])
  maps = {}
  for name, net in model.nets.items():
    feature_map = net.features(inputs)
    for task in net.head.tasks:
      def logit_of_best(features, task=task):
        logits = net.head(features)[task][0]
        return logits[jnp.argmax(logits)]
      grads = jax.grad(logit_of_best)(feature_map)
      weights = jnp.mean(grads[0], axis=(0, 1))
      cam = jax.nn.relu(jnp.sum(feature_map[0] * weights, axis=-1))
      peak = jnp.max(cam)
      maps[task] = np.asarray(jnp.where(peak > 0, cam / jnp.maximum(peak, 1e-12), 0.0), np.float32)
  return maps


def to_picture(cam: np.ndarray, picture_size: tuple[int, int], image_size: int,
               resize_size: int | None = None) -> np.ndarray:
  """Places a crop's map onto the whole picture: float32 [H, W] in [0, 1], zero outside the crop."""
  width, height = picture_size
  resize_size = transforms.eval_resize_size(image_size, resize_size)
  scale = min(width, height) / resize_size  # picture pixels per resized pixel
  crop = image_size * scale
  left, top = (width - crop) / 2, (height - crop) / 2
  crop_px = max(1, round(crop))
  cam_image = Image.fromarray(np.asarray(cam, np.float32), mode="F").resize(
      (crop_px, crop_px), Image.Resampling.BILINEAR)
  canvas = np.zeros((height, width), np.float32)
  x0, y0 = round(left), round(top)
  patch = np.asarray(cam_image)
  xs, ys = max(0, -x0), max(0, -y0)
  xe, ye = min(crop_px, width - x0), min(crop_px, height - y0)
  canvas[y0 + ys:y0 + ye, x0 + xs:x0 + xe] = patch[ys:ye, xs:xe]
  return np.clip(canvas, 0.0, 1.0)


def overlay(picture: Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
  """The picture with a 'jet' colour map of `heatmap` ([H, W] in [0, 1]) blended on top."""
  colours = matplotlib.colormaps["jet"](heatmap)[..., :3]
  base = np.asarray(picture.convert("RGB"), np.float32) / 255.0
  blended = (1 - alpha) * base + alpha * colours
  return Image.fromarray(np.clip(blended * 255, 0, 255).round().astype(np.uint8))


def explain(trained, picture: Image.Image, view: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """{task: [H, W] heatmap in [0, 1] at the picture's size} for a trained model and an RGB picture.

  `view` is the evaluation view the model saw (from the file's bytes, as predict reads
  them); by default it is made from `picture`.
  """
  view = trained.view(picture) if view is None else view
  cams = class_activation_maps(trained.model, view)
  box = transforms.picture_box(picture, trained.augment)
  return {task: within(to_picture(cams[task], (box[2] - box[0], box[3] - box[1]),
                                  trained.image_size, trained.augment.eval_resize_size),
                       picture.size, box)
          for task in trained.scheme.tasks}


def within(heatmap: np.ndarray, picture_size: tuple[int, int],
           box: tuple[int, int, int, int]) -> np.ndarray:
  """A map of the part `box` (left, top, right, bottom) of a picture, placed on the whole
  picture (zero outside): where the view came from when its bars were cropped."""
  width, height = picture_size
  if box == (0, 0, width, height):
    return heatmap
  canvas = np.zeros((height, width), np.float32)
  canvas[box[1]:box[3], box[0]:box[2]] = heatmap
  return canvas
