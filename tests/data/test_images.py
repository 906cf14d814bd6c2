"""Decoding: every mode becomes RGB uint8, bad bytes give clear errors, bombs are refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from artclf.data import images
from artclf.data.images import ImageDecodeError, ImageTooLargeError

def _decode_array(data, **kwargs):
  return np.asarray(images.decode_image(data, **kwargs), dtype=np.uint8)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def _noise(width, height, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _smooth_rgb(width, height) -> np.ndarray:
  """An asymmetric, JPEG-friendly picture: gradients differ along x and y."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                   (x + 2 * y) % 256], axis=-1).astype(np.uint8)


def _check_rgb(array, width, height):
  assert array.dtype == np.uint8
  assert array.shape == (height, width, 3)


def test_rgb_jpeg_roundtrip():
  pixels = _smooth_rgb(40, 30)
  decoded = _decode_array(_encode(Image.fromarray(pixels), "JPEG", quality=95))
  _check_rgb(decoded, 40, 30)
  assert np.abs(decoded.astype(int) - pixels).mean() < 3


def test_truncated_jpeg_raises_decode_error():
  data = _encode(Image.fromarray(_noise(64, 64)), "JPEG")
  with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
    images.decode_image(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"garbage bytes, not an image", bytes(range(256)) * 4])
def test_garbage_bytes_raise_decode_error(data):
  with pytest.raises(ImageDecodeError, match="not a decodable image"):
    images.decode_image(data)


def test_rgba_png_composited_on_white_by_default_or_black():
  rgba = np.zeros((4, 6, 4), dtype=np.uint8)
  rgba[..., 0] = 200  # Red everywhere ...
  rgba[:, :3, 3] = 255  # ... opaque on the left half,
  rgba[:, 3:, 3] = 0  # transparent on the right half.
  data = _encode(Image.fromarray(rgba, "RGBA"), "PNG")
  on_white = _decode_array(data)
  _check_rgb(on_white, 6, 4)
  assert (on_white[:, :3] == [200, 0, 0]).all()
  assert (on_white[:, 3:] == [255, 255, 255]).all()
  on_black = _decode_array(data, alpha_background=images.BLACK)
  assert (on_black[:, 3:] == [0, 0, 0]).all()


def test_half_transparent_la_blends_with_background():
  la = np.zeros((3, 3, 2), dtype=np.uint8)
  la[..., 1] = 128  # Black at half opacity over white -> mid grey.
  decoded = _decode_array(_encode(Image.fromarray(la, "LA"), "PNG"))
  _check_rgb(decoded, 3, 3)
  assert np.all(np.abs(decoded.astype(int) - 127) <= 1)


def test_grayscale_png():
  gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
  decoded = _decode_array(_encode(Image.fromarray(gray, "L"), "PNG"))
  _check_rgb(decoded, 5, 4)
  for channel in range(3):
    np.testing.assert_array_equal(decoded[..., channel], gray)


def test_palette_png_with_transparency():
  palette_image = Image.new("P", (5, 4), 1)
  palette_image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
  palette_image.putpixel((0, 0), 0)
  data = _encode(palette_image, "PNG", transparency=0)
  decoded = _decode_array(data)
  _check_rgb(decoded, 5, 4)
  assert decoded[0, 0].tolist() == [255, 255, 255]  # The transparent index.
  assert decoded[1, 1].tolist() == [10, 20, 30]


def test_cmyk_jpeg():
  cmyk = Image.fromarray(_smooth_rgb(24, 16)).convert("CMYK")
  data = _encode(cmyk, "JPEG", quality=95)
  assert Image.open(io.BytesIO(data)).mode == "CMYK"
  decoded = _decode_array(data)
  _check_rgb(decoded, 24, 16)
  expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
  assert np.abs(decoded.astype(int) - expected).max() <= 1


def test_16_bit_png_is_scaled_not_clipped():
  values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
  data = _encode(Image.fromarray(values), "PNG")
  assert Image.open(io.BytesIO(data)).mode.startswith("I")
  decoded = _decode_array(data)
  _check_rgb(decoded, 4, 1)
  assert decoded[0, :, 0].tolist() == [0, 1, 128, 255]


def test_exif_rotated_jpeg_matches_upright_copy():
  upright = Image.fromarray(_smooth_rgb(64, 32))
  # EXIF orientation 6: the viewer must turn the stored pixels 90 degrees clockwise.
  stored = upright.transpose(Image.Transpose.ROTATE_90)
  exif = Image.Exif()
  exif[0x0112] = 6
  rotated_data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
  upright_data = _encode(upright, "JPEG", quality=95)
  from_rotated = _decode_array(rotated_data)
  from_upright = _decode_array(upright_data)
  _check_rgb(from_rotated, 64, 32)
  assert np.abs(from_rotated.astype(int) - from_upright).mean() < 3
  # Without honouring EXIF the shapes would not even match.
  assert np.asarray(Image.open(io.BytesIO(rotated_data))).shape[:2] == (64, 32)


def test_one_pixel_image():
  decoded = _decode_array(_encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"))
  assert decoded.tolist() == [[[9, 8, 7]]]


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG that claims a size in its header; the pixel data never comes."""
  def chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_decompression_bomb_header_is_refused():
  with pytest.raises(ImageTooLargeError, match="decompression bomb"):
    images.decode_image(_png_header_only(100_000, 100_000))
  # Also above our own (lower) limit but below Pillow's.
  with pytest.raises(ImageTooLargeError, match="exceeds the limit"):
    images.decode_image(_png_header_only(10_000, 10_000))
  assert issubclass(ImageTooLargeError, ImageDecodeError)


def test_max_pixels_is_configurable():
  data = _encode(Image.new("RGB", (40, 30)), "PNG")
  with pytest.raises(ImageTooLargeError, match="1200 pixels exceeds the limit of 1000"):
    images.decode_image(data, max_pixels=1000)
  assert images.decode_image(data, max_pixels=1200).size == (40, 30)


def test_draft_downscales_big_jpeg_but_not_below_request():
  data = _encode(Image.fromarray(_smooth_rgb(800, 600)), "JPEG")
  image = images.decode_image(data, draft_size=224)
  assert image.size == (400, 300)  # 1/2 scale; 1/4 would be 150 < 224.


def test_a_float_tiff_holding_nan_is_refused_like_a_nan_array():
  pixels = np.full((6, 5), 0.5, np.float32)
  pixels[2, 3] = np.nan
  data = _encode(Image.fromarray(pixels, mode="F"), "TIFF")
  with pytest.raises(images.ImageDecodeError, match="holds NaN or infinite values"):
    images.decode_image(data)
  finite = _encode(Image.fromarray(np.full((6, 5), 0.5, np.float32), mode="F"), "TIFF")
  assert _decode_array(finite)[0, 0].tolist() == [128, 128, 128]


def test_an_image_without_pixels_is_one_clear_error():
  with pytest.raises(images.ImageDecodeError, match="an image of 0 x 0 pixels holds no pixels"):
    images.to_rgb(Image.new("RGB", (0, 0)))
