"""The README's main job: a real model on the shared set in about 3 minutes on a 2-core CPU.

  python -m artclf.train --config=configs/cpu_quick.py --workdir=checkpoints/cpu_quick

The ImageNet trunk stays frozen: its features are computed once for a few augmented
views of every training image (most of the run time), then the SE block and the three
heads train on them in seconds per epoch. Measured on the 2-core CPU from a clean checkout:
183 s (about 140 s of it caching features), then 47 s for `python -m artclf.evaluate`;
a rerun with the features cached on disk trains in under a minute.
"""

from configs import common


def get_config():
  config = common.base_config()
  config.feature_cache.enabled = "always"
  config.feature_cache.num_views = 2
  config.batch_size = 32
  config.phase1 = common.phase(epochs=30, learning_rate=1e-3, trainable="heads",
                               decay_rate=0.9, early_stopping_patience=8)
  return config
