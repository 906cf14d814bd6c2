"""The augmentations that erase the source: each does what it says, and only when asked."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from artclf.data import source_erasing, transforms
from artclf.data.transforms import AugmentConfig
from tests.data.test_transforms import NO_AUGMENTATION


def _object_on_backdrop(size=64, backdrop=(120, 120, 120), colour=(200, 40, 30)) -> Image.Image:
  """A red disc on a flat grey backdrop."""
  pixels = np.full((size, size, 3), backdrop, np.uint8)
  y, x = np.mgrid[0:size, 0:size]
  pixels[(x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 4) ** 2] = colour
  return Image.fromarray(pixels)


def _png(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, "PNG")
  return buffer.getvalue()


def test_switched_off_they_leave_every_view_as_it_was():
  # Their draws come after the older ones: with them off, views are unchanged, and
  # nothing is applied.
  image = _png(_object_on_backdrop(96))
  config = AugmentConfig(image_size=48)
  params = transforms.sample_view_params(config, transforms.example_rng(0, 2, 5), 96, 96)
  first_ten = transforms.example_rng(0, 2, 5).random(10)
  assert params["brightness"] == pytest.approx(1.0 + 0.2 * (2 * first_ten[6] - 1))
  assert not any(params["erasing"][k] for k in ("backdrop", "bars", "downsample", "jpeg"))
  assert params["erasing"]["temperature"] == 0.0
  assert not source_erasing.enabled(config) and config.augments
  assert not dataclasses.replace(NO_AUGMENTATION).augments
  assert dataclasses.replace(NO_AUGMENTATION, jpeg_probability=0.1).augments
  view = transforms.preprocess_example(image, train=True, config=config, seed=0, epoch=2,
                                       index=5, normalize=False)
  again = transforms.preprocess_example(image, train=True, config=config, seed=0, epoch=2,
                                        index=5, normalize=False)
  np.testing.assert_array_equal(view, again)


def test_the_backdrop_is_recoloured_and_the_object_kept():
  image = _object_on_backdrop()
  out = np.asarray(source_erasing.recolour_backdrop(image, (0, 200, 0), 1.0, tolerance=24))
  assert tuple(out[0, 0]) == (0, 200, 0) and tuple(out[-1, 5]) == (0, 200, 0)
  assert tuple(out[32, 32]) == (200, 40, 30)
  half = np.asarray(source_erasing.recolour_backdrop(image, (0, 200, 0), 0.5, tolerance=24))
  assert tuple(half[0, 0]) == (60, 160, 60)


def test_white_balance_warms_or_cools():
  grey = Image.new("RGB", (8, 8), (100, 100, 100))
  warm = np.asarray(source_erasing.shift_temperature(grey, 0.2))[0, 0]
  cool = np.asarray(source_erasing.shift_temperature(grey, -0.2))[0, 0]
  assert tuple(warm) == (120, 100, 80) and tuple(cool) == (80, 100, 120)


@pytest.mark.parametrize("across", [True, False])
def test_bars_are_painted_on_the_two_sides(across):
  image = _object_on_backdrop(100)
  out = np.asarray(source_erasing.paint_bars(image, (0.1, 0.2), across, (255, 255, 0)))
  first, last = (out[:10], out[80:]) if across else (out[:, :10], out[:, 80:])
  assert (first == (255, 255, 0)).all() and (last == (255, 255, 0)).all()
  inner = out[10:80] if across else out[:, 10:80]
  assert not (inner == (255, 255, 0)).all(axis=-1).any()


def test_downsampling_and_jpeg_lose_detail_but_keep_the_size():
  rng = np.random.default_rng(0)
  noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
  for out in (source_erasing.downsample(noise, 4.0), source_erasing.reencode_jpeg(noise, 10)):
    assert out.size == (64, 64) and out.mode == "RGB"
    # Detail lost: neighbouring pixels agree far more than in the noise.
    def roughness(im):
      return np.abs(np.diff(np.asarray(im, np.float32), axis=1)).mean()
    assert roughness(out) < 0.7 * roughness(noise)


def test_probabilities_are_the_share_of_views_that_get_each():
  config = AugmentConfig(bars_probability=0.3, jpeg_probability=0.7, backdrop_probability=0.0)
  drawn = [transforms.sample_view_params(config, transforms.example_rng(1, 0, i), 50, 50)["erasing"]
           for i in range(2000)]
  assert np.mean([d["bars"] for d in drawn]) == pytest.approx(0.3, abs=0.04)
  assert np.mean([d["jpeg"] for d in drawn]) == pytest.approx(0.7, abs=0.04)
  assert not any(d["backdrop"] for d in drawn)
  qualities = [d["jpeg_quality"] for d in drawn]
  assert min(qualities) >= 20 and max(qualities) <= 80 and len(set(qualities)) > 40
  widths = np.array([d["bars_widths"] for d in drawn])
  assert widths.min() >= 0 and widths.max() <= 0.2


def test_a_training_view_with_every_one_on_is_a_pure_function_of_its_draws():
  config = dataclasses.replace(
      NO_AUGMENTATION, image_size=32, backdrop_probability=1.0, temperature=0.2,
      bars_probability=1.0, downsample_probability=1.0, jpeg_probability=1.0)
  image = _png(_object_on_backdrop(64))
  views = [transforms.preprocess_example(image, train=True, config=config, seed=4, epoch=e,
                                         index=0, normalize=False) for e in (0, 0, 1)]
  assert views[0].shape == (32, 32, 3) and views[0].dtype == np.uint8
  np.testing.assert_array_equal(views[0], views[1])
  assert not np.array_equal(views[0], views[2])
  plain = transforms.preprocess_example(image, train=True, config=NO_AUGMENTATION.__class__(
      **{**dataclasses.asdict(NO_AUGMENTATION), "image_size": 32}), seed=4, epoch=0, index=0,
      normalize=False)
  assert np.abs(views[0].astype(int) - plain).mean() > 10
