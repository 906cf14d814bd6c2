"""Image views: the one place that turns an image into what the network sees.

  eval_view(image, config)          the evaluation view: uint8 RGB [S, S, 3]
  train_view(bytes, config, rng)    one augmented training view: uint8 RGB [S, S, 3]
  preprocess_example(bytes, ...)    either of them from encoded bytes, optionally normalised
  caffe_normalize(views)            uint8 RGB -> the float32 input of the Keras ResNet50

Both views start from `picture`: the decoded picture, without its letterbox or pillarbox
bars when config.crop_bars (artclf.data.borders; `picture_box` says where that part lies).

Evaluation view: decode (JPEGs in Pillow's draft mode when they are much larger than
needed), crop the bars if asked, resize the shorter side to `eval_resize_size` (by default image_size x 256 /
224, the ImageNet habit), centre-crop `image_size`; no randomness at all. Evaluation,
prediction, Grad-CAM, the feature cache and the benches all call `eval_view`, so a photo
gives the same pixels on every path.

Training view, all in one pass over the pixels:
  1. decode (JPEGs with Pillow's draft mode when they are much larger than needed), and
     crop the bars if asked;
  2. one affine `Image.transform` that does the random resized crop (zoom in
     and out, aspect jitter, translation), the small rotation and the
     horizontal flip together, resampling once; a box `reduce` first when the
     crop shrinks the picture by 2x or more, against aliasing;
  3. brightness and contrast jitter as one 256-entry lookup table (still uint8),
     then saturation jitter and random greyscale (colour cues such as a museum's
     lighting and backgrounds say little about an object, see configs/common.py);
  4. the augmentations that erase the source (artclf.data.source_erasing: backdrop
     colour, white balance, painted bars, resolution, JPEG quality), if switched on;
  5. only then float32 and caffe normalisation (the pipeline does this per batch).
Pixels that the crop or rotation brings in from outside the picture get
`fill_rgb`, by default the ImageNet mean, which caffe normalisation maps to ~0.

Randomness comes only from the generator passed in, which the pipeline derives
from (seed, epoch, record index) with `example_rng`, so any view can be
recomputed exactly, in any process, in any order.

The Keras ResNet50 weights expect 'caffe' inputs: BGR channel order, the ImageNet
per-channel mean subtracted, no scaling; `caffe_normalize` makes them.
"""

import dataclasses
import math

import numpy as np
from PIL import Image

from artclf.data import borders, images, source_erasing

# ImageNet mean in RGB: zero after caffe normalisation.
IMAGENET_MEAN_RGB = (124, 116, 104)
# The same means in BGR order, as in keras.applications.imagenet_utils.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
# Evaluation resizes the shorter side to image_size * 256 / 224 before the centre crop.
EVAL_RESIZE_RATIO = 256 / 224


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Image size and the training augmentations; each one can be switched off.

  Evaluation uses only image_size, resize_size and jpeg_draft.
  """
  image_size: int = 224
  # Evaluation: shorter side before the centre crop; None = image_size * 256 / 224.
  resize_size: int | None = None
  # Random resized crop. The crop window's area, as a fraction of the square on
  # the picture's shorter side, is drawn uniformly from crop_area: below 1 zooms
  # in, above 1 zooms out (the window then extends past the picture).
  random_crop: bool = True
  crop_area: tuple[float, float] = (0.35, 1.35)
  # Aspect ratio (width / height) of the window, drawn log-uniformly.
  crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
  horizontal_flip: bool = True
  # Rotation angle drawn uniformly from [-max_rotation_deg, max_rotation_deg].
  max_rotation_deg: float = 10.0
  # Brightness factor from [1 - brightness, 1 + brightness]; contrast likewise
  # (blending with the view's mean grey). 0 switches each off.
  brightness: float = 0.2
  contrast: float = 0.2
  # Saturation factor from [1 - saturation, 1 + saturation] (0: grey, 1: unchanged),
  # and the probability of a greyscale view.
  saturation: float = 0.0
  grayscale_probability: float = 0.0
  # Augmentations that erase the source's way of photographing (artclf.data.source_erasing),
  # each with the probability of a view getting it; 0 switches each off.
  backdrop_probability: float = 0.0   # backdrop blended towards a random colour
  backdrop_tolerance: int = 24        # grey levels from the outer ring's colour
  temperature: float = 0.0            # white balance: red x (1 + t), blue x (1 - t), |t| <= this
  bars_probability: float = 0.0       # letterbox or pillarbox bars of a random colour
  bars_max_fraction: float = 0.2      # each bar's width, up to this fraction of the side
  downsample_probability: float = 0.0  # down by a factor from downsample_factor, and back up
  downsample_factor: tuple[float, float] = (2.0, 4.0)
  jpeg_probability: float = 0.0       # re-encoded at a JPEG quality from jpeg_quality
  jpeg_quality: tuple[int, int] = (20, 80)
  fill_rgb: tuple[int, int, int] = IMAGENET_MEAN_RGB
  # How the affine view is resampled: 'bilinear' (Pillow's BILINEAR affine), or
  # 'supersample': nearest-neighbour at twice the output size, then a 2x2 box
  # average (4 point samples per pixel). Pillow's bilinear affine has no SIMD
  # path; supersampling is 2x faster here, antialiases shrinking crops better,
  # and differs from bilinear by about 1 grey level on average.
  resample: str = "supersample"
  # Let the JPEG decoder downscale (by 1/2, 1/4, 1/8) pictures much larger
  # than needed: to >= 2 x image_size in training, >= resize_size in evaluation.
  jpeg_draft: bool = True
  # Crop uniform letterbox/pillarbox bars (artclf.data.borders) before anything else, in
  # training and evaluation alike; the bar_* thresholds are borders.BarSettings'.
  crop_bars: bool = False
  bar_tolerance: int = 12
  bar_min_width: int = 2
  bar_min_content: float = 0.2

  @property
  def augments(self) -> bool:
    """Whether training views differ from the evaluation view."""
    return (self.random_crop or self.horizontal_flip or self.max_rotation_deg > 0
            or self.brightness > 0 or self.contrast > 0 or self.saturation > 0
            or self.grayscale_probability > 0 or source_erasing.enabled(self))

  @property
  def eval_resize_size(self) -> int:
    return eval_resize_size(self.image_size, self.resize_size)

  @property
  def bar_settings(self) -> borders.BarSettings:
    return borders.BarSettings(tolerance=self.bar_tolerance, min_width=self.bar_min_width,
                               min_content=self.bar_min_content)


def eval_resize_size(image_size: int, resize_size: int | None = None) -> int:
  """The shorter side before the evaluation crop: resize_size, or image_size * 256 / 224."""
  return resize_size or round(image_size * EVAL_RESIZE_RATIO)


def from_config(settings) -> AugmentConfig:
  """The AugmentConfig of a config's `data.augment` (a ConfigDict or dict).

  Keys it does not know are left out, and keys a config lacks (an older run's saved
  config) keep their defaults; lists become tuples; resize_size 0 means the default.
  """
  fields = {f.name for f in dataclasses.fields(AugmentConfig)}
  values = {k: v for k, v in dict(settings).items() if k in fields}
  for key in ("crop_area", "crop_aspect", "downsample_factor", "jpeg_quality"):
    if key in values:
      values[key] = tuple(values[key])
  values["resize_size"] = values.get("resize_size") or None
  return AugmentConfig(**values)


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The augmentation generator of one record in one epoch; a pure function of its inputs."""
  return np.random.default_rng([seed, epoch, index])


def preprocess_example(image_bytes: bytes, *, train: bool,
                       config: AugmentConfig = AugmentConfig(),
                       rng: np.random.Generator | None = None,
                       seed: int = 0, epoch: int = 0, index: int = 0,
                       normalize: bool = True) -> np.ndarray:
  """Encoded image -> one view, [S, S, 3]: float32 caffe-normalised, or uint8 RGB if not normalize.

  With train=True the view is augmented using `rng`, or when rng is None the
  generator `example_rng(seed, epoch, index)`, which is what the pipeline uses:
  `preprocess_example(b, train=True, seed=s, epoch=e, index=i)` is exactly the
  image the pipeline produces for record i in epoch e. K different views of a
  record for feature caching: epoch=0..K-1.

  Raises:
    images.ImageDecodeError: the bytes do not decode.
  """
  if train:
    if rng is None:
      rng = example_rng(seed, epoch, index)
    view = train_view(image_bytes, config, rng)
  else:
    view = eval_view(image_bytes, config)
  return caffe_normalize(view) if normalize else view


def train_view(image_bytes: bytes, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
  """The augmented uint8 RGB [S, S, 3] view of encoded image bytes."""
  size = config.image_size
  # Draft decoding only shrinks JPEGs whose both sides stay >= 2 x the output,
  # so that the zoomed-in crops keep their detail.
  image = picture(images.decode_image(
      image_bytes, draft_size=2 * size if config.jpeg_draft else None), config)
  width, height = image.size
  params = sample_view_params(config, rng, width, height)
  if config.resample == "supersample":
    image = _affine_view(image, params, 2 * size, config.fill_rgb, Image.Resampling.NEAREST)
    image = image.reduce(2)
  elif config.resample == "bilinear":
    image = _affine_view(image, params, size, config.fill_rgb, Image.Resampling.BILINEAR)
  else:
    raise ValueError(f"resample must be 'supersample' or 'bilinear', not {config.resample!r}")
  brightness, contrast = params["brightness"], params["contrast"]
  if brightness != 1.0 or contrast != 1.0:
    # Contrast blends with the mean grey of the view, brightness scales it all:
    # out = b * (c * x + (1 - c) * mean) = alpha * x + beta: one table lookup
    # in C (Image.point), and the mean from the histogram.
    histogram = np.asarray(image.histogram(), dtype=np.float64).reshape(3, 256)
    mean_grey = float((histogram @ np.arange(256)).sum() / histogram.sum())
    alpha = brightness * contrast
    beta = brightness * (1.0 - contrast) * mean_grey
    lut = np.clip(np.arange(256) * alpha + beta, 0, 255).round().astype(np.uint8)
    image = image.point(np.tile(lut, 3).tolist())
  if params["grayscale"]:
    image = image.convert("L").convert("RGB")
  elif params["saturation"] != 1.0:
    # Blends with the view's own greyscale (Pillow's ImageEnhance.Color).
    image = Image.blend(image.convert("L").convert("RGB"), image, params["saturation"])
  image = source_erasing.apply(image, params["erasing"], config)
  return np.asarray(image, dtype=np.uint8)


def sample_view_params(config: AugmentConfig, rng: np.random.Generator,
                       width: int, height: int) -> dict[str, float]:
  """Draws the window (centre, size), angle, flip and colour factors of one view.

  The same number of draws is made whatever is switched off, so toggling one
  augmentation does not change the others' random values.
  """
  # Draws added later come last, so that older configs keep their exact views.
  (area_u, aspect_u, cx_u, cy_u, angle_u, flip_u, bright_u, contrast_u, saturation_u,
   grayscale_u) = rng.random(10)
  erasing = source_erasing.draw(config, rng.random(source_erasing.NUM_DRAWS))
  short = min(width, height)
  if config.random_crop:
    area = config.crop_area[0] + area_u * (config.crop_area[1] - config.crop_area[0])
    log_lo, log_hi = (math.log(a) for a in config.crop_aspect)
    aspect = math.exp(log_lo + aspect_u * (log_hi - log_lo))
    side = short * math.sqrt(area)
    crop_w, crop_h = side * math.sqrt(aspect), side / math.sqrt(aspect)
    # Anywhere inside the picture if the window fits; if it is larger (zoom
    # out), anywhere that keeps the picture inside the window.
    cx = _between(crop_w / 2, width - crop_w / 2, cx_u)
    cy = _between(crop_h / 2, height - crop_h / 2, cy_u)
  else:
    # The centre square, as in evaluation (without the 224/256 margin).
    crop_w = crop_h = short
    cx, cy = width / 2, height / 2
  angle = config.max_rotation_deg * (2 * angle_u - 1)
  return {
      "cx": cx, "cy": cy, "crop_w": crop_w, "crop_h": crop_h, "angle_deg": angle,
      "flip": bool(config.horizontal_flip and flip_u < 0.5),
      "brightness": 1.0 + config.brightness * (2 * bright_u - 1),
      "contrast": 1.0 + config.contrast * (2 * contrast_u - 1),
      "saturation": 1.0 + config.saturation * (2 * saturation_u - 1),
      "grayscale": bool(grayscale_u < config.grayscale_probability),
      "erasing": erasing,
  }


def _between(lo: float, hi: float, u: float) -> float:
  return lo + u * (hi - lo)


def _affine_view(image: Image.Image, params: dict, size: int,
                 fill_rgb: tuple[int, int, int], resample: Image.Resampling) -> Image.Image:
  """Crop + rotate + flip + resize to size x size with one resampling."""
  cx, cy = params["cx"], params["cy"]
  scale_x, scale_y = params["crop_w"] / size, params["crop_h"] / size
  # A box filter first when shrinking by >= 2x: point sampling alone would alias.
  reduce_factor = int(min(scale_x, scale_y))
  if reduce_factor >= 2:
    image = image.reduce(reduce_factor)
    cx, cy = cx / reduce_factor, cy / reduce_factor
    scale_x, scale_y = scale_x / reduce_factor, scale_y / reduce_factor
  theta = math.radians(params["angle_deg"])
  cos, sin = math.cos(theta), math.sin(theta)
  flip = -1.0 if params["flip"] else 1.0
  # Output pixel (x, y), centred as (u, v) = (x, y) - size / 2, samples the
  # input at centre + R(theta) @ diag(flip * scale_x, scale_y) @ (u, v).
  a, b = cos * flip * scale_x, -sin * scale_y
  d, e = sin * flip * scale_x, cos * scale_y
  half = size / 2
  coefficients = (a, b, cx - (a + b) * half, d, e, cy - (d + e) * half)
  if coefficients == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) and image.size == (size, size):
    return image
  return image.transform((size, size), Image.Transform.AFFINE, coefficients,
                         resample=resample, fillcolor=tuple(fill_rgb))


def eval_view_loader(source, config: AugmentConfig):
  """load_rows for `artclf.inference.forward_rows`: the evaluation views of a source's rows."""
  def load_rows(rows) -> dict[str, np.ndarray]:
    return {"image": np.stack([eval_view(source[int(r)]["image"], config) for r in rows])}
  return load_rows


def eval_view(image, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
  """The evaluation view, uint8 RGB [S, S, 3], of encoded bytes or an RGB PIL image.

  Bytes are decoded with `images.decode_image` (JPEG draft mode down to the resize
  size if config.jpeg_draft), so a file gives the same view wherever it is read.

  Raises:
    images.ImageDecodeError: the bytes do not decode.
  """
  if isinstance(image, (bytes, bytearray, memoryview)):
    image = images.decode_image(
        bytes(image), draft_size=config.eval_resize_size if config.jpeg_draft else None)
  image = picture(image, config)
  image = center_crop(resize_shorter_side(image, config.eval_resize_size), config.image_size)
  return np.asarray(image, dtype=np.uint8)


def picture(image: Image.Image, config: AugmentConfig) -> Image.Image:
  """The part of a decoded picture that views are made from: all of it, or without its bars."""
  return borders.crop_bars(image, config.bar_settings) if config.crop_bars else image


def picture_box(image: Image.Image, config: AugmentConfig) -> tuple[int, int, int, int]:
  """(left, top, right, bottom) of `picture(image, config)` within `image`."""
  if not config.crop_bars:
    return (0, 0) + image.size
  return borders.bar_box(image, config.bar_settings)


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
