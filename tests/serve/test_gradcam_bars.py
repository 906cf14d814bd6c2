"""Grad-CAM maps of a run that crops bars lie on the picture between the bars."""

import numpy as np

from artclf.serve import gradcam


def test_a_map_is_placed_on_the_part_between_the_bars():
  # A 200 x 100 picture with 50 px pillarbox bars: the view came from the middle 100 x 100.
  cam = np.ones((7, 7), np.float32)
  inner = gradcam.to_picture(cam, (100, 100), image_size=224)
  placed = gradcam.within(inner, (200, 100), (50, 0, 150, 100))
  assert placed.shape == (100, 200)
  columns = np.flatnonzero(placed.max(axis=0) > 0.5)
  assert columns[0] >= 50 and columns[-1] < 150
  assert placed[:, :50].max() == 0 and placed[:, 150:].max() == 0


def test_a_picture_without_bars_keeps_its_map():
  heatmap = np.random.default_rng(0).random((30, 40)).astype(np.float32)
  assert gradcam.within(heatmap, (40, 30), (0, 0, 40, 30)) is heatmap
