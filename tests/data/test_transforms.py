"""Per-example views: shapes, dtypes, determinism, each augmentation doing what it says."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from artclf.data import transforms
from artclf.data.transforms import AugmentConfig

# Every augmentation off: the baseline the tests switch single augmentations on from.
NO_AUGMENTATION = AugmentConfig(random_crop=False, horizontal_flip=False, max_rotation_deg=0.0,
                                brightness=0.0, contrast=0.0, saturation=0.0,
                                grayscale_probability=0.0)


def _jpeg(width, height, seed=0) -> bytes:
  y, x = np.mgrid[0:height, 0:width]
  smooth = (x + 2 * y) * 255 // (width + 2 * height)
  pixels = np.stack([x * 255 // width, y * 255 // height, smooth], -1).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
  return buffer.getvalue()


@pytest.mark.parametrize("size", [(224, 224), (512, 300), (50, 120), (1, 1)])
@pytest.mark.parametrize("train", [True, False])
def test_views_have_the_configured_shape_and_dtype(size, train):
  data = _jpeg(*size)
  view = transforms.preprocess_example(data, train=train, config=AugmentConfig(image_size=96))
  assert view.shape == (96, 96, 3) and view.dtype == np.float32
  raw = transforms.preprocess_example(data, train=train, config=AugmentConfig(image_size=96),
                                   normalize=False)
  assert raw.shape == (96, 96, 3) and raw.dtype == np.uint8
  np.testing.assert_array_equal(view, transforms.caffe_normalize(raw))


def test_train_views_are_deterministic_per_seed_epoch_index():
  data = _jpeg(300, 200)
  def view(**kwargs):
    return transforms.preprocess_example(data, train=True, normalize=False, **kwargs)
  np.testing.assert_array_equal(view(seed=1, epoch=2, index=3), view(seed=1, epoch=2, index=3))
  np.testing.assert_array_equal(view(seed=1, epoch=2, index=3),
                                view(rng=transforms.example_rng(1, 2, 3)))
  reference = view(seed=1, epoch=2, index=3)
  for other in [dict(seed=2, epoch=2, index=3), dict(seed=1, epoch=3, index=3),
                dict(seed=1, epoch=2, index=4)]:
    assert not np.array_equal(reference, view(**other)), other


def test_evaluation_has_no_augmentation():
  data = _jpeg(300, 200)
  views = [transforms.preprocess_example(data, train=False, seed=s, epoch=s, index=s)
           for s in range(3)]
  for v in views[1:]:
    np.testing.assert_array_equal(views[0], v)
  train_view = transforms.preprocess_example(data, train=True)
  assert not np.allclose(train_view, views[0])


def test_no_augmentation_in_training_is_the_centre_square():
  data = _jpeg(300, 200)
  view = transforms.preprocess_example(data, train=True, config=dataclasses.replace(
      NO_AUGMENTATION, image_size=100, resample="bilinear"), normalize=False, seed=4)
  square = Image.open(io.BytesIO(data)).convert("RGB").crop((50, 0, 250, 200))
  expected = np.asarray(square.resize((100, 100), Image.Resampling.BILINEAR))
  assert np.abs(view.astype(int) - expected).mean() < 2.5


@pytest.mark.parametrize("resample", ["supersample", "bilinear"])
def test_flip_alone_mirrors_the_view(resample):
  data = _jpeg(200, 200)
  flip_only = dataclasses.replace(NO_AUGMENTATION, horizontal_flip=True, image_size=64,
                                  resample=resample)
  still = dataclasses.replace(flip_only, horizontal_flip=False)
  views = {}
  for index in range(20):
    rng = transforms.example_rng(0, 0, index)
    params = transforms.sample_view_params(flip_only, transforms.example_rng(0, 0, index), 200, 200)
    flipped = params["flip"]
    views.setdefault(flipped, transforms.preprocess_example(
        data, train=True, config=flip_only, rng=rng, normalize=False))
  assert set(views) == {True, False}  # Both outcomes happen.
  plain = transforms.preprocess_example(data, train=True, config=still, normalize=False)
  np.testing.assert_array_equal(views[False], plain)
  assert np.abs(views[True].astype(int) - plain[:, ::-1]).mean() < 1.0


def test_rotation_and_zoom_out_fill_with_the_imagenet_mean():
  data = _jpeg(100, 100)
  zoom_out = dataclasses.replace(NO_AUGMENTATION, random_crop=True, crop_area=(4.0, 4.0),
                                 crop_aspect=(1.0, 1.0), image_size=64)
  view = transforms.preprocess_example(data, train=True, config=zoom_out, normalize=False)
  # A window twice the picture's side: the picture fills a 32 x 32 square inside.
  assert (view[0, 0] == transforms.IMAGENET_MEAN_RGB).all()
  assert (view[-1, -1] == transforms.IMAGENET_MEAN_RGB).all()
  assert np.abs(transforms.caffe_normalize(view[0, 0])).max() < 1.0
  rotated = dataclasses.replace(NO_AUGMENTATION, max_rotation_deg=30, image_size=64)
  corners = [transforms.preprocess_example(data, train=True, config=rotated, index=i,
                                        normalize=False)[0, 0] for i in range(5)]
  assert any((c == transforms.IMAGENET_MEAN_RGB).all() for c in corners)


def test_colour_jitter_changes_brightness_and_contrast_only():
  data = _jpeg(128, 128)
  base = dataclasses.replace(NO_AUGMENTATION, image_size=64)
  plain = transforms.preprocess_example(data, train=True, config=base, normalize=False).astype(float)
  jitter = dataclasses.replace(base, brightness=0.4, contrast=0.4)
  means, stds = [], []
  for index in range(8):
    view = transforms.preprocess_example(data, train=True, config=jitter, index=index,
                                      normalize=False).astype(float)
    means.append(view.mean())
    stds.append(view.std())
    # Per-pixel affine in intensity: same geometry, so correlation stays ~1.
    assert np.corrcoef(view.ravel(), plain.ravel())[0, 1] > 0.98
  assert np.ptp(means) > 10 and np.ptp(stds) > 5


def test_saturation_and_grayscale():
  rng = np.random.default_rng(0)
  colourful = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(colourful).save(buffer, format="PNG")
  data = buffer.getvalue()
  base = dataclasses.replace(NO_AUGMENTATION, image_size=64)

  def chroma(view):
    view = view.astype(float)
    return np.abs(view - view.mean(axis=-1, keepdims=True)).mean()

  plain = transforms.preprocess_example(data, train=True, config=base, normalize=False)
  grey = transforms.preprocess_example(data, train=True, normalize=False,
                                    config=dataclasses.replace(base, grayscale_probability=1.0))
  assert chroma(grey) == 0 and chroma(plain) > 20
  saturated = dataclasses.replace(base, saturation=0.9)
  chromas = [chroma(transforms.preprocess_example(data, train=True, config=saturated, index=i,
                                               normalize=False)) for i in range(32)]
  assert min(chromas) < 0.6 * chroma(plain) < chroma(plain) * 1.2 < max(chromas)


def test_new_colour_draws_keep_older_views():
  # Saturation and greyscale draw after the older parameters: with them off, a view's
  # geometry and brightness are what they were before they existed.
  params = transforms.sample_view_params(AugmentConfig(), transforms.example_rng(0, 0, 3), 300, 200)
  first_eight = transforms.example_rng(0, 0, 3).random(8)
  assert params["brightness"] == pytest.approx(1.0 + 0.2 * (2 * first_eight[6] - 1))
  assert params["saturation"] == 1.0 and not params["grayscale"]


def test_sample_view_params_ranges():
  config = AugmentConfig()
  for index in range(200):
    p = transforms.sample_view_params(config, transforms.example_rng(0, 0, index), 300, 200)
    area = p["crop_w"] * p["crop_h"] / 200 ** 2
    assert config.crop_area[0] - 1e-9 <= area <= config.crop_area[1] + 1e-9
    assert 3 / 4 - 1e-9 <= p["crop_w"] / p["crop_h"] <= 4 / 3 + 1e-9
    assert abs(p["angle_deg"]) <= config.max_rotation_deg
    assert 0.8 <= p["brightness"] <= 1.2 and 0.8 <= p["contrast"] <= 1.2
    if p["crop_w"] <= 300:  # A window that fits stays inside the picture.
      assert p["crop_w"] / 2 - 1e-9 <= p["cx"] <= 300 - p["crop_w"] / 2 + 1e-9


def test_bad_resample_name():
  with pytest.raises(ValueError, match="resample must be"):
    transforms.preprocess_example(_jpeg(10, 10), train=True,
                               config=AugmentConfig(resample="lanczos"))
