"""A small synthetic ancient_art build for pipeline tests (fast; no shared data needed)."""

import io

import numpy as np
from PIL import Image

from artclf import scheme as scheme_lib
from artclf.data import dataset

# Per row: culture, medium, period; cycles so that every class (and unknown) occurs.
_CULTURES = ["egyptian"] * 6 + ["greek"] * 2 + ["roman", ""]


def build_synthetic(root, num_train: int = 24, num_val: int = 10, museums=("",)) -> str:
  """Writes num_train + num_val JPEGs of varied sizes with labels, builds them, returns data_dir.

  Record i comes from museums[(i // 2) % len(museums)] (the museum column): pairs of
  records, so that no class of the cycling labels belongs to one museum alone.
  """
  source = root / "source"
  (source / "images").mkdir(parents=True)
  rng = np.random.default_rng(0)
  rows = ["image,object_id,culture,medium,period,split,museum"]
  for i in range(num_train + num_val):
    width, height = [(64, 48), (40, 90), (120, 120), (300, 200)][i % 4]
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height,
                       np.full_like(x, (37 * i) % 256)], -1).astype(np.uint8)
    pixels = np.clip(pixels + rng.integers(0, 20, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    (source / "images" / f"{i:03d}.jpg").write_bytes(buffer.getvalue())
    culture = _CULTURES[i % len(_CULTURES)]
    medium = ["architecture", "painting", "sculpture", ""][i % 4]
    period = scheme_lib.DEFAULT.classes["period"][i % 3]
    split = "train" if i < num_train else "val"
    museum = museums[(i // 2) % len(museums)]
    rows.append(f"images/{i:03d}.jpg,OBJ{i},{culture},{medium},{period},{split},{museum}")
  (source / "labels.csv").write_text("\n".join(rows) + "\n")
  data_dir = root / "built"
  dataset.build(source, data_dir)  # records its source: configs may name data_dir alone
  return data_dir
