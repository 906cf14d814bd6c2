"""Leave-one-source-out validation (artclf.train.crossval):

  python -m artclf.crossval --config=configs/cpu_quick.py --holdout_column=museum \
      --workdir=checkpoints/crossval_museum

Trains once per held-out source (in WORKDIR/holdout_<value>; a rerun resumes) and prints,
then writes to WORKDIR/crossval.md, each held-out source's figures and their mean.
"""

from absl import app, flags
from ml_collections import config_flags

from artclf import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file under configs/.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the held-out runs and the report go.")
_COLUMN = flags.DEFINE_string("holdout_column", "museum", "The labels.csv column of the sources.")
_MIN_IMAGES = flags.DEFINE_integer("min_images", 20, "Hold out only sources with this many images.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  from artclf.train import crossval  # pylint: disable=import-outside-toplevel  # starts JAX
  try:
    crossval.run(_CONFIG.value, _WORKDIR.value, _COLUMN.value, _MIN_IMAGES.value)
  except ValueError as error:
    return runtime.report_error(error)
  return 0


if __name__ == "__main__":
  app.run(main)
