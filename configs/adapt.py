"""Adapting a trained run to a collection's corrections (artclf.adapt).

  python -m artclf.adapt --workdir=checkpoints/cpu_quick --labels=CSV --out=DIR \
      [--config=configs/adapt.py] [--config.example_weight=5]

The base run's frozen part stays as it was; the heads (and SE block) start from the base
run's weights and train on the frozen part's cached features of the base run's training
split mixed with the collection's photographs, each of those weighing example_weight.
Chosen on held-out rows of the collection (leave-one-museum-out draws, never the test
split): see docs/results.md. Measured on the 2-core AMD EPYC: see bench/adapt.py.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  # What trains: 'heads' (SE block and heads on the frozen trunk's cached features), or
  # 'last:N' for a short fine-tune of the trunk's last N stages too (on their cached inputs).
  config.trainable = "heads"
  config.epochs = 10
  config.learning_rate = 3e-4
  # Each of the collection's photographs weighs this many base training photographs.
  config.example_weight = 5.0
  # Rows of the collection held out (at random, per class) for the before/after figures;
  # 0 uses every row (the final fit).
  config.holdout_fraction = 0.2
  return config
