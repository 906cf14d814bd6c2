"""Full fine-tuning on a CPU: cpu_quick's frozen-trunk phase, then the whole network.

  python -m artclf.train --config=configs/cpu_full_finetune.py --workdir=checkpoints/cpu_full_finetune

The "full fine-tuning" row of docs/results.md's design table on the study's question.
Phase 2 trains every layer (BatchNorm stays on its ImageNet moving statistics) at a low
learning rate on freshly augmented images each epoch: nothing can be cached, so it runs
at the full train step's speed. Measured on a 2-core CPU: 1125 s in all, phase 2 at
4.3-4.7 images/s (about 3.7 minutes per epoch of the shared set). On a GPU,
`configs/default.py` is the config for this.
(Times measured on version 1 of the shared set, 994 training images.)
"""

from configs import common, cpu_quick


def get_config():
  config = cpu_quick.get_config()
  # Training the trunk needs augmented views (cpu_quick's frozen heads do better without).
  config.data.augment = common.base_config().data.augment
  config.phase2 = common.phase(epochs=4, learning_rate=3e-5, trainable="all", decay_rate=0.7,
                               early_stopping_patience=2)
  return config
