"""Decoding image bytes into RGB uint8 with Pillow, robustly.

Every image that enters artclf (building the dataset, the input pipeline,
prediction) goes through `decode_image`, so all of them get the same treatment:

* EXIF orientation is applied (`ImageOps.exif_transpose`), so a phone photo
  stored sideways with an orientation tag comes out upright.
* Any Pillow mode becomes 8-bit RGB. Transparent pixels (RGBA, LA, PA, P with a
  transparency key) are composited onto WHITE by default (`alpha_background`):
  museum cut-outs are normally shown on white. 16-bit and 32-bit integer images
  (I;16*, I) are scaled from the 16-bit range to 8 bits (v * 255 / 65535), not
  clipped; float images (F) are taken as [0, 1] if their maximum is <= 1, else
  as [0, 255]; one holding NaN or infinity is refused, as is an image of 0 pixels.
* Images with more than `max_pixels` pixels are refused from their header,
  before any pixel is decoded (decompression bombs), with `ImageTooLargeError`.
* Truncated files and bytes that are not an image raise `ImageDecodeError`
  (never a bare OSError from deep inside Pillow, and never a half-decoded
  image: Pillow's LOAD_TRUNCATED_IMAGES is not touched).
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

# 64 megapixels: far above any photo the model needs (it sees 224 x 224), and
# below Pillow's own bomb limit (89 MP warning, 179 MP error).
DEFAULT_MAX_PIXELS = 64_000_000

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


class ImageDecodeError(ValueError):
  """The bytes are not a decodable image (garbage, truncated, unsupported)."""


class ImageTooLargeError(ImageDecodeError):
  """The image header declares more pixels than allowed (decompression bomb)."""


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 draft_size: int | None = None,
                 alpha_background: tuple[int, int, int] = WHITE) -> Image.Image:
  """Decodes encoded image bytes into an upright RGB PIL image.

  Args:
    data: the encoded file (JPEG, PNG, WebP, TIFF, ... anything Pillow reads).
    max_pixels: refuse images whose header declares more pixels than this.
    draft_size: for JPEG, let the decoder downscale by 1/2, 1/4 or 1/8 as long
      as both sides stay >= draft_size (much faster for big photos; the result
      is still resized by the caller). None decodes at full resolution.
    alpha_background: RGB colour that transparent pixels are composited onto.

  Raises:
    ImageTooLargeError: more than `max_pixels` pixels.
    ImageDecodeError: anything else that keeps the bytes from decoding.
  """
  image = open_image(data)
  width, height = image.size
  if width * height > max_pixels:
    raise ImageTooLargeError(
        f"image of {width} x {height} = {width * height} pixels exceeds the limit of "
        f"{max_pixels} pixels (decompression bomb?)")
  try:
    if draft_size is not None and image.format in ("JPEG", "MPO"):
      image.draft("RGB", (draft_size, draft_size))
    image.load()
    image = ImageOps.exif_transpose(image)
    return to_rgb(image, alpha_background=alpha_background)
  except ImageDecodeError:
    raise
  except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
    # Pillow reports truncated or corrupt data as OSError / SyntaxError, and a
    # few plugins leak IndexError / TypeError on malformed headers.
    raise ImageDecodeError(f"image data is corrupt or truncated: {e}") from None


def open_image(data: bytes) -> Image.Image:
  """The image of encoded bytes, its header read and no pixel decoded yet (`image.size`
  is then known at no cost); ImageDecodeError if the bytes are not an image."""
  try:
    with warnings.catch_warnings():
      # Our own limit (decode_image's max_pixels) is the one that counts; Pillow's
      # warning is noise.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      return Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise ImageTooLargeError(f"image refused as a decompression bomb: {e}") from None
  except Image.UnidentifiedImageError:
    raise ImageDecodeError(f"not a decodable image ({len(data)} bytes): unknown or broken "
                           "image format") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise ImageDecodeError(f"not a decodable image ({len(data)} bytes): {e}") from None


def to_rgb(image: Image.Image, *,
           alpha_background: tuple[int, int, int] = WHITE) -> Image.Image:
  """Converts a PIL image of any mode to 8-bit RGB (see the module docstring).

  Raises ImageDecodeError for an image without pixels, or a float image holding NaN or
  infinite values (refused as `artclf.predict` refuses such arrays).
  """
  if not image.width or not image.height:
    raise ImageDecodeError(f"an image of {image.width} x {image.height} pixels holds no pixels")
  mode = image.mode
  if mode == "RGB":
    return image
  if mode == "P":
    # A palette image may carry transparency; go through RGBA to honour it.
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  elif mode == "PA":
    image = image.convert("RGBA")
  elif mode.startswith("I;16") or mode == "I":
    pixels = np.asarray(image, dtype=np.float64)
    # 32-bit 'I' images are how Pillow often hands back 16-bit files; values
    # above 16 bits are clipped.
    gray = np.clip(pixels * (255 / 65535), 0, 255).round().astype(np.uint8)
    image = Image.fromarray(gray, mode="L")
  elif mode == "F":
    pixels = np.asarray(image, dtype=np.float64)
    if not np.isfinite(pixels).all():
      raise ImageDecodeError("the float image holds NaN or infinite values")
    scale = 255.0 if pixels.max() <= 1.0 else 1.0
    gray = np.clip(pixels * scale, 0, 255).round().astype(np.uint8)
    image = Image.fromarray(gray, mode="L")
  elif mode == "1":
    image = image.convert("L")
  if image.mode in ("RGBA", "LA", "RGBa", "La"):
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, tuple(alpha_background) + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")
  return image.convert("RGB")

