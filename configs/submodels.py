"""Three independent ResNet50 + SE submodels, one per task: parity with the study's design.

  python -m artclf.train --config=configs/submodels.py --workdir=checkpoints/submodels

Same recipe as configs/cpu_quick.py, with three trunks instead of one shared trunk (three
times the parameters), each with its SE block. While frozen the three ImageNet trunks are
identical, so their features are computed once: about 4.5 minutes on a 2-core CPU,
evaluation 3 minutes (measured on version 1 of the shared set).
"""

from configs import cpu_quick


def get_config():
  config = cpu_quick.get_config()
  config.model.submodels = True
  config.model.use_se = True  # the study's submodels each have an SE block
  config.model.standardize = False  # its statistics are of fixed pooled vectors; SE gates vary
  # The study's heads: plain cross-entropy on the SE-gated vectors, as before issue 25's
  # unit-length vectors and ordinal period loss (chosen for cpu_quick's frozen features).
  config.model.unit_length = False
  config.loss.ordinal_weights = {}
  return config
