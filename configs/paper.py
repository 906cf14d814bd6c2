"""The study's recipe: ResNet50 + SE, 20 epochs of Adam with exponential decay, full fine-tuning.

  python -m artclf.train --config=configs/paper.py --workdir=checkpoints/paper

For a GPU (expected: a few minutes on one; not measured here, as no GPU was at hand): no
class weights, no label smoothing, plain Adam at 1e-4 decaying by 0.9 per epoch over the
whole network, like the Keras original.
"""

from configs import common


def get_config():
  config = common.base_config()
  config.feature_cache.enabled = "never"
  config.loss.class_weights = False
  config.loss.label_smoothing = 0.0
  config.optimizer.clip_norm = 0.0
  config.model.dropout = 0.0
  config.phase1 = common.phase(epochs=20, learning_rate=1e-4, trainable="all", decay_rate=0.9)
  config.phase2 = common.phase(epochs=0, learning_rate=1e-5, trainable="all")
  return config
