"""Three independent ResNet50 + SE submodels, one per task: parity with the study's design.

  python -m artclf.train --config=configs/submodels.py --workdir=checkpoints/submodels

Same recipe as configs/cpu_quick.py, with three trunks instead of one shared trunk
(three times the parameters and feature-caching time: about 25 minutes on a 2-core CPU).
"""

from configs import cpu_quick


def get_config():
  config = cpu_quick.get_config()
  config.model.submodels = True
  return config
