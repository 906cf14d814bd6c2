"""Partial fine-tuning on a CPU: cpu_quick's frozen-trunk phase, then the trunk's last stage too.

  python -m artclf.train --config=configs/cpu_finetune.py --workdir=checkpoints/cpu_finetune

Phase 2 unfreezes conv5 (the last of the trunk's five stages) at a lower learning rate.
The outputs of conv1-conv4 stay frozen, so they are cached once per image view (like
phase 1's trunk features) and only conv5, the SE block and the heads run per step.
About 6 minutes on a 2-core CPU (phase 2 trains at about 19 images/s).
(Times measured on version 1 of the shared set, 994 training images.)
"""

from configs import common, cpu_quick


def get_config():
  config = cpu_quick.get_config()
  # Training the trunk needs augmented views (cpu_quick's frozen heads do better without).
  config.data.augment = common.base_config().data.augment
  config.phase2 = common.phase(epochs=3, learning_rate=1e-4, trainable="last:1", decay_rate=0.7,
                               early_stopping_patience=2)
  return config
