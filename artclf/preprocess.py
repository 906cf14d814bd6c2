"""Image preprocessing shared by training, evaluation, prediction and the ImageNet check.

The Keras ResNet50 weights expect 'caffe' inputs: BGR channel order, the ImageNet
per-channel mean subtracted, no scaling. Every path into the network goes through
`caffe_normalize`, so the trunk always sees what it was trained on.
"""

import numpy as np
from PIL import Image

# ImageNet channel means in BGR order, as in keras.applications.imagenet_utils.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def caffe_normalize(rgb: np.ndarray) -> np.ndarray:
  """uint8 or float RGB [..., H, W, 3] -> float32 BGR with the ImageNet mean subtracted."""
  rgb = np.asarray(rgb)
  bgr = np.empty(rgb.shape, dtype=np.float32)
  # One channel at a time into a contiguous result: about 3x faster than
  # subtracting from the channel-reversed view, same values.
  for channel in range(3):
    np.subtract(rgb[..., 2 - channel], CAFFE_MEAN_BGR[channel], out=bgr[..., channel],
                dtype=np.float32)
  return bgr


def caffe_denormalize(x: np.ndarray) -> np.ndarray:
  """Inverse of `caffe_normalize`: float BGR -> uint8 RGB (for overlays and debugging)."""
  bgr = np.asarray(x, dtype=np.float32) + CAFFE_MEAN_BGR
  return np.clip(bgr[..., ::-1], 0, 255).round().astype(np.uint8)


def resize_shorter_side(image: Image.Image, size: int,
                        resample=Image.Resampling.BILINEAR) -> Image.Image:
  """Resizes so that the shorter side is `size` (the longer one rounded)."""
  w, h = image.size
  if w <= h:
    new_w, new_h = size, max(1, round(h * size / w))
  else:
    new_w, new_h = max(1, round(w * size / h)), size
  if (new_w, new_h) == (w, h):
    return image
  return image.resize((new_w, new_h), resample)


def center_crop(image: Image.Image, size: int) -> Image.Image:
  """Crops a size x size square at ((w - size) // 2, (h - size) // 2)."""
  w, h = image.size
  left, top = (w - size) // 2, (h - size) // 2
  return image.crop((left, top, left + size, top + size))


def eval_transform(image: Image.Image, image_size: int = 224,
                   resize_size: int | None = None) -> np.ndarray:
  """The evaluation view of an RGB PIL image: resize shorter side, centre crop, uint8 HWC.

  `resize_size` defaults to image_size * 256 / 224 (the classic ImageNet ratio).
  """
  if resize_size is None:
    resize_size = round(image_size * 256 / 224)
  image = center_crop(resize_shorter_side(image, resize_size), image_size)
  return np.asarray(image, dtype=np.uint8)
