"""Letterbox and pillarbox bars: found on a picture's edges and cropped before the resize.

The harvest's Met, Cleveland and Chicago photographs are 224 px squares with the object's
picture centred between two bars of one flat colour (black, white or grey); the Getty's
keep their own shape. Bars, their colour and the square shape tell the museum, and so the
culture, without looking at the object. `bar_box` finds them so that the one view function
(artclf.data.transforms) can crop them first, for training and inference alike.

A bar is a run of outer rows (or columns) that are each one flat colour, the same colour
from the edge inwards: every pixel of the line within `tolerance` grey levels of the
line's median, and that median within `tolerance` of the outermost line's. A letterbox
centres the picture, so bars count only in pairs of equal width: top and bottom (or left
and right) both flat and of the same colour, and both cropped by the narrower one's width
(a dark backdrop that runs on from one bar does not widen the other). A dark backdrop
that reaches only one edge, or that is shaded, is not a bar.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class BarSettings:
  """How flat a line must be to count as a bar, and how wide bars must be to be cropped."""
  # Grey levels a bar pixel may differ from its line's median (JPEG noise), and a
  # line's median from the edge line's.
  tolerance: int = 12
  # Bars narrower than this (px, each side) are left alone.
  min_width: int = 2
  # Never crop the picture to less than this fraction of its side.
  min_content: float = 0.2


def bar_box(image: Image.Image, settings: BarSettings = BarSettings()
            ) -> tuple[int, int, int, int]:
  """(left, top, right, bottom) of the picture between its bars: the whole picture if none."""
  pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
  height, width = pixels.shape[:2]
  top, bottom = _bar_pair(pixels, settings)
  left, right = _bar_pair(pixels.transpose(1, 0, 2), settings)
  return left, top, width - right, height - bottom


def crop_bars(image: Image.Image, settings: BarSettings = BarSettings()) -> Image.Image:
  """The picture without its letterbox or pillarbox bars (the same object if it has none)."""
  box = bar_box(image, settings)
  if box == (0, 0) + image.size:
    return image
  return image.crop(box)


def _bar_pair(pixels: np.ndarray, settings: BarSettings) -> tuple[int, int]:
  """Widths (rows) of the bars on the first and last rows of [H, W, 3], or (0, 0)."""
  side = pixels.shape[0]
  limit = int(side * (1 - settings.min_content) / 2)
  first, first_colour = _bar_width(pixels, limit, settings.tolerance)
  last, last_colour = _bar_width(pixels[::-1], limit, settings.tolerance)
  if min(first, last) < settings.min_width:
    return 0, 0
  if np.abs(first_colour - last_colour).max() > settings.tolerance:
    return 0, 0
  width = min(first, last)
  return width, width


def _bar_width(pixels: np.ndarray, limit: int, tolerance: int) -> tuple[int, np.ndarray]:
  """How many leading rows of [H, W, 3] are flat and of the first row's colour, and that colour."""
  rows = pixels[:limit]
  medians = np.median(rows, axis=1)                                   # [limit, 3]
  spread = np.abs(rows - medians[:, None, :]).max(axis=(1, 2))        # [limit]
  drift = np.abs(medians - medians[:1]).max(axis=1)                   # [limit]
  flat = (spread <= tolerance) & (drift <= tolerance)
  width = int(np.argmin(flat)) if not flat.all() else len(flat)
  return width, medians[0]
