"""The main job on a lighter trunk: EfficientNet-Lite0 (4.7 M parameters) instead of ResNet50.

  python -m artclf.train --config=configs/cpu_lite.py --workdir=checkpoints/cpu_lite
  python -m artclf.train --config=configs/cpu_lite.py --workdir=checkpoints/cpu_lite2 \
      --config.model.trunk=efficientnet_lite2 --config.data.augment.image_size=260

Everything else as configs/cpu_quick.py: the frozen trunk's features are cached once, then
the SE block and the heads train on them. For laptops: the trunk runs about 2.5 times as
fast as ResNet50 here (see docs/results.md for its accuracy, speed and timings).
MEASURED_TIME
"""

from configs import cpu_quick


def get_config():
  config = cpu_quick.get_config()
  config.model.trunk = "efficientnet_lite0"
  config.data.augment.image_size = 224
  return config
