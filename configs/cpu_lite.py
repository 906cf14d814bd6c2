"""The main job on a lighter trunk: EfficientNet-Lite0 (4.7 M parameters) instead of ResNet50.

  python -m artclf.train --config=configs/cpu_lite.py --workdir=checkpoints/cpu_lite
  python -m artclf.train --config=configs/cpu_lite.py --workdir=checkpoints/cpu_lite2 \
      --config.model.trunk=efficientnet_lite2 --config.data.augment.image_size=260

Everything else as configs/cpu_quick.py: the frozen trunk's features are cached once, then
the heads train on them. For laptops: the trunk runs about 2.5 times as fast as ResNet50
here, at a cost in accuracy (docs/results.md compares the trunks). Measured on the 2-core
AMD EPYC from a clean checkout: Lite0 163 s (59 s to the cached features, 60 s the heads,
38 s the familiarity scorer), then 17 s for `python -m artclf.evaluate`; Lite2 169 s.
"""

from configs import cpu_quick


def get_config():
  config = cpu_quick.get_config()
  config.model.trunk = "efficientnet_lite0"
  config.data.augment.image_size = 224
  return config
