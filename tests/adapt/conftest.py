"""A tiny trained run and a corrections CSV of new photographs, for the adapt tests."""

import io

import numpy as np
import pytest
from PIL import Image

from artclf.train import trainer
from configs import tiny
from tests.data import fixtures as data_fixtures

CULTURES = ("egyptian", "greek", "roman")


def train_tiny(root, phase2_epochs: int = 0):
  """A workdir as `python -m artclf.train --config=configs/tiny.py` leaves it (seconds)."""
  config = tiny.get_config()
  config.data.data_dir = str(data_fixtures.build_synthetic(root, num_train=16, num_val=8))
  config.data.max_examples = 0
  config.feature_cache.dir = str(root / "feature_cache")
  config.phase1.epochs = 1
  config.phase2.epochs = phase2_epochs
  config.phase2.trainable = "last:1"
  trainer.train_and_evaluate(config, root / "run")
  return root / "run"


@pytest.fixture(scope="session")
def base_run(tmp_path_factory):
  return train_tiny(tmp_path_factory.mktemp("adapt_base"))


def photo(seed: int, colour) -> bytes:
  """A small JPEG dominated by one colour (so that a class can be learned from it)."""
  rng = np.random.default_rng(seed)
  pixels = np.clip(np.asarray(colour)[None, None] + rng.integers(-30, 30, (48, 64, 3)), 0, 255)
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=90)
  return buffer.getvalue()


def write_corrections(folder, count: int = 20, extra_lines=(), header="image,culture,medium,period,note"):
  """A corrections CSV with `count` photos: red ones roman, blue ones greek; returns its path."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "photos").mkdir(exist_ok=True)
  lines = [header]
  for i in range(count):
    culture, colour = ("roman", (220, 40, 40)) if i % 2 else ("greek", (40, 40, 220))
    (folder / "photos" / f"p{i}.jpg").write_bytes(photo(i, colour))
    lines.append(f"photos/p{i}.jpg,{culture},sculpture,,anything")
  lines.extend(extra_lines)
  path = folder / "corrections.csv"
  path.write_text("\n".join(lines) + "\n")
  return path
