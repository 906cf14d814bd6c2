"""Full fine-tuning of ResNet50 + SE + three heads at 224 px, for a GPU or TPU.

  python -m artclf.train --config=configs/default.py --workdir=checkpoints/default

Phase 1 trains the SE block and heads on the frozen ImageNet trunk (5 epochs), phase 2
fine-tunes the whole network at a lower learning rate. Expected: a few minutes on one modern
GPU for the shared set; far too slow for a CPU (use configs/cpu_quick.py there).
"""

from configs import common


def get_config():
  config = common.base_config()
  config.feature_cache.enabled = "never"
  config.model.compute_dtype = "bfloat16"
  config.data.worker_count = 4
  config.batch_size = 64
  config.phase1 = common.phase(epochs=5, learning_rate=1e-3, trainable="heads")
  config.phase2 = common.phase(epochs=20, learning_rate=1e-4, trainable="all", decay_rate=0.9,
                               warmup_steps=50, early_stopping_patience=5)
  return config
