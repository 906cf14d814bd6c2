"""Leave-one-source-out validation (artclf.train.crossval):

  python -m artclf.crossval --config=configs/cpu_quick.py --holdout_column=museum \
      --workdir=checkpoints/crossval_museum

Trains once per held-out source (in WORKDIR/holdout_<value>; a rerun resumes) and prints,
then writes to WORKDIR/crossval.md, each held-out source's figures and their mean.

With --shots=0,5,10,20 [--draws=5], each held-out run is also adapted (configs/adapt.py,
`artclf.adapt.kshot`) with k labelled photographs per class of the held-out source and
scored on its other photographs: WORKDIR/kshot.md, mean and spread over the draws.
"""

from absl import app, flags
from ml_collections import config_flags

from artclf import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file under configs/.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the held-out runs and the report go.")
_COLUMN = flags.DEFINE_string("holdout_column", "museum", "The labels.csv column of the sources.")
_MIN_IMAGES = flags.DEFINE_integer("min_images", 20, "Hold out only sources with this many images.")
_SHOTS = flags.DEFINE_list("shots", None, "k-shot adaptation: photographs per class of the "
                           "held-out source given to adapt (0 = the run as trained).")
_DRAWS = flags.DEFINE_integer("draws", 5, "Draws of the k photographs (seeds 0 .. draws-1).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  # pylint: disable=import-outside-toplevel  # these start JAX
  from artclf.adapt import kshot
  from artclf.train import crossval
  try:
    if _SHOTS.value:
      shots = [int(k) for k in _SHOTS.value]
      kshot.run(_CONFIG.value, _WORKDIR.value, _COLUMN.value, shots, _DRAWS.value,
                _MIN_IMAGES.value)
    else:
      crossval.run(_CONFIG.value, _WORKDIR.value, _COLUMN.value, _MIN_IMAGES.value)
  except ValueError as error:
    return runtime.report_error(error)
  return 0


if __name__ == "__main__":
  app.run(main)
