"""Training augmentations that erase how a source photographs, not what it photographs.

The shared set's museums can be told apart by their pictures alone: letterbox bars of one
colour, a grey, black or white backdrop, a colour cast, the resolution and the JPEG
settings of their image servers (issue 25). A model that reads those learns the museum,
not the object. Each augmentation below changes one of them at random, after the view's
geometry and colour jitter (`transforms.train_view`), in this order:

  backdrop     pixels near the colour of the view's outer ring (the backdrop, and bars)
               are blended towards a random colour
  temperature  a white-balance shift: red x (1 + t), blue x (1 - t)
  bars         letterbox or pillarbox bars of a random colour and width are painted in
  downsample   down by a random factor and back up: a lower-resolution source
  jpeg         re-encoded at a random JPEG quality

All draws come from `draw`, which the view's parameters hold, so a view is still a pure
function of (seed, epoch, record).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Uniform numbers one view draws for these augmentations, whatever is switched on.
NUM_DRAWS = 16
# The width of the outer ring whose median colour is taken as the backdrop's.
_RING = 4


def enabled(config) -> bool:
  """Whether any of the augmentations is on in an AugmentConfig."""
  return (config.backdrop_probability > 0 or config.temperature > 0
          or config.bars_probability > 0 or config.downsample_probability > 0
          or config.jpeg_probability > 0)


def draw(config, u: np.ndarray) -> dict:
  """The random choices of one view from NUM_DRAWS uniform numbers `u`."""
  low, high = config.downsample_factor
  q_low, q_high = config.jpeg_quality
  return {
      "backdrop": bool(u[0] < config.backdrop_probability),
      "backdrop_rgb": tuple(int(255 * v) for v in u[1:4]),
      "backdrop_strength": 0.5 + 0.5 * float(u[4]),
      "temperature": config.temperature * (2 * float(u[5]) - 1),
      "bars": bool(u[6] < config.bars_probability),
      "bars_across": bool(u[7] < 0.5),  # letterbox (top and bottom) or pillarbox
      "bars_widths": (config.bars_max_fraction * float(u[8]), config.bars_max_fraction * float(u[9])),
      "bars_rgb": _bar_colour(float(u[10]), u[1:4]),
      "downsample": bool(u[11] < config.downsample_probability),
      "downsample_factor": low + (high - low) * float(u[12]),
      "jpeg": bool(u[13] < config.jpeg_probability),
      "jpeg_quality": int(round(q_low + (q_high - q_low) * float(u[14]))),
  }


def _bar_colour(u: float, rgb: np.ndarray) -> tuple[int, int, int]:
  """Black or white as the harvest's bars are, mostly; else a grey, or any colour."""
  if u < 0.35:
    return (0, 0, 0)
  if u < 0.6:
    return (255, 255, 255)
  if u < 0.8:
    grey = int(255 * rgb[0])
    return (grey, grey, grey)
  return tuple(int(255 * v) for v in rgb[::-1])


def apply(image: Image.Image, params: dict, config) -> Image.Image:
  """The view `image` (RGB) with the drawn augmentations applied."""
  if params["backdrop"]:
    image = recolour_backdrop(image, params["backdrop_rgb"], params["backdrop_strength"],
                              config.backdrop_tolerance)
  if params["temperature"] != 0.0:
    image = shift_temperature(image, params["temperature"])
  if params["bars"]:
    image = paint_bars(image, params["bars_widths"], params["bars_across"], params["bars_rgb"])
  if params["downsample"]:
    image = downsample(image, params["downsample_factor"])
  if params["jpeg"]:
    image = reencode_jpeg(image, params["jpeg_quality"])
  return image


def recolour_backdrop(image: Image.Image, rgb, strength: float, tolerance: int) -> Image.Image:
  """Blends the pixels within `tolerance` of the outer ring's median colour towards `rgb`."""
  pixels = np.asarray(image, dtype=np.int16)
  ring = np.concatenate([pixels[:_RING].reshape(-1, 3), pixels[-_RING:].reshape(-1, 3),
                         pixels[:, :_RING].reshape(-1, 3), pixels[:, -_RING:].reshape(-1, 3)])
  backdrop = np.median(ring, axis=0)
  mask = np.abs(pixels - backdrop).max(axis=-1) <= tolerance
  out = pixels.astype(np.float32)
  out[mask] = (1 - strength) * out[mask] + strength * np.asarray(rgb, np.float32)
  return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8))


def shift_temperature(image: Image.Image, t: float) -> Image.Image:
  """Red scaled by 1 + t and blue by 1 - t: warmer for t > 0, cooler below; one lookup table."""
  ramp = np.arange(256, dtype=np.float32)
  tables = [ramp * (1 + t), ramp, ramp * (1 - t)]
  lut = np.concatenate([np.clip(table, 0, 255).round() for table in tables]).astype(np.uint8)
  return image.point(lut.tolist())


def paint_bars(image: Image.Image, widths: tuple[float, float], across: bool, rgb) -> Image.Image:
  """Bars of colour `rgb`, widths[0] and widths[1] of the side: top and bottom if `across`,
  else left and right."""
  pixels = np.array(image, dtype=np.uint8)
  side = pixels.shape[0] if across else pixels.shape[1]
  first, second = (int(round(w * side)) for w in widths)
  if across:
    pixels[:first] = rgb
    pixels[side - second:] = rgb
  else:
    pixels[:, :first] = rgb
    pixels[:, side - second:] = rgb
  return Image.fromarray(pixels)


def downsample(image: Image.Image, factor: float) -> Image.Image:
  """Shrunk by `factor` and resized back: the detail of a smaller photograph."""
  width, height = image.size
  small = image.resize((max(1, round(width / factor)), max(1, round(height / factor))),
                       Image.Resampling.BILINEAR)
  return small.resize((width, height), Image.Resampling.BILINEAR)


def reencode_jpeg(image: Image.Image, quality: int) -> Image.Image:
  """The image after a JPEG round trip at `quality`."""
  buffer = io.BytesIO()
  image.save(buffer, format="JPEG", quality=quality)
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    return decoded.convert("RGB")
