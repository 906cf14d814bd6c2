"""A tiny, randomly initialised network on small images: for tests and smoke runs only.

  python -m artclf.train --config=configs/tiny.py --workdir=/tmp/artclf_tiny

Runs in seconds on a CPU; its accuracy means nothing.
"""

from configs import common


def get_config():
  config = common.base_config()
  config.model.trunk = "tiny"
  config.model.pretrained = False
  config.model.dropout = 0.1
  config.data.augment.image_size = 32
  config.data.max_examples = 64
  config.data.read_threads = 1
  config.feature_cache.enabled = "never"
  config.batch_size = 8
  config.eval_batch_size = 16
  config.phase1 = common.phase(epochs=2, learning_rate=1e-2, trainable="heads")
  config.phase2 = common.phase(epochs=1, learning_rate=1e-3, trainable="all")
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  return config
