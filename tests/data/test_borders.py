"""Letterbox bars: found and cropped on the shared set's harvest images and on drawn pictures."""

import numpy as np
import pytest
from PIL import Image

from artclf.data import borders, transforms


def _shared(shared_data_dir, name: str) -> Image.Image:
  return Image.open(shared_data_dir / "images" / name).convert("RGB")


def _noisy(height: int, width: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name, box", [
    # The harvest's 224 px squares: black pillarbox bars (Met) ...
    ("met/MET_329767.jpg", (28, 0, 196, 224)),
    # ... white and grey flat backdrops that reach both edges, cropped like bars ...
    ("met/MET_544393.jpg", (64, 0, 160, 224)),
    ("met/MET_543920.jpg", (34, 0, 190, 224)),
    # ... and a Chicago object on flat grey, cropped on all four sides.
    ("aic/CHI_105545.jpg", (36, 6, 188, 218)),
])
def test_harvest_bars_are_found(shared_data_dir, name, box):
  picture = _shared(shared_data_dir, name)
  assert borders.bar_box(picture) == box
  assert borders.crop_bars(picture).size == (box[2] - box[0], box[3] - box[1])


@pytest.mark.parametrize("name", [
    "cle/CLE_94124.jpg",   # a dark relief on a black backdrop, no bars
    "met/MET_546234.jpg",  # a black gradient backdrop, no bars
])
def test_a_dark_backdrop_is_not_a_bar(shared_data_dir, name):
  picture = _shared(shared_data_dir, name)
  assert borders.bar_box(picture) == (0, 0, 224, 224)
  assert borders.crop_bars(picture) is picture


def test_drawn_black_letterbox_is_cropped_exactly():
  pixels = np.zeros((120, 160, 3), np.uint8)
  pixels[20:100] = _noisy(80, 160)
  assert borders.bar_box(Image.fromarray(pixels)) == (0, 20, 160, 100)


def test_bars_of_unequal_width_are_cropped_by_the_narrower():
  # A dark backdrop running on from the bottom bar does not widen the crop at the top.
  pixels = np.full((100, 80, 3), 255, np.uint8)
  pixels[10:70] = _noisy(60, 80)
  assert borders.bar_box(Image.fromarray(pixels)) == (0, 10, 80, 90)


def test_a_band_on_one_edge_or_bars_of_two_colours_are_not_bars():
  one_side = _noisy(100, 100)
  one_side[:30] = 0
  assert borders.bar_box(Image.fromarray(one_side)) == (0, 0, 100, 100)
  two_colours = _noisy(100, 100)
  two_colours[:20], two_colours[80:] = 0, 255
  assert borders.bar_box(Image.fromarray(two_colours)) == (0, 0, 100, 100)


def test_a_photo_without_bars_is_left_unchanged():
  photo = Image.fromarray(_noisy(90, 130))
  assert borders.crop_bars(photo) is photo
  config = transforms.AugmentConfig(image_size=64, crop_bars=True)
  np.testing.assert_array_equal(transforms.eval_view(photo, config),
                                transforms.eval_view(photo, transforms.AugmentConfig(image_size=64)))


def test_views_crop_the_bars_when_asked(shared_data_dir):
  data = (shared_data_dir / "images" / "met/MET_329767.jpg").read_bytes()
  picture = _shared(shared_data_dir, "met/MET_329767.jpg")
  cropped = picture.crop((28, 0, 196, 224))
  on = transforms.AugmentConfig(crop_bars=True, jpeg_draft=False)
  off = transforms.AugmentConfig(jpeg_draft=False)
  np.testing.assert_array_equal(transforms.eval_view(data, on), transforms.eval_view(cropped, off))
  assert transforms.picture_box(picture, on) == (28, 0, 196, 224)
  assert transforms.picture_box(picture, off) == (0, 0, 224, 224)
  still = transforms.AugmentConfig(crop_bars=True, random_crop=False, horizontal_flip=False,
                                   max_rotation_deg=0.0, brightness=0.0, contrast=0.0)
  view = transforms.train_view(data, still, np.random.default_rng(0))
  # The training view is the cropped picture's centre square: no black columns left.
  assert view[:, :4].mean() > 60 and view[:, -4:].mean() > 60
