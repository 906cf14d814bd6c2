"""Trains artclf: python -m artclf.train --config=configs/NAME.py --workdir=DIR

Any config value can be overridden on the command line, e.g.
  --config.phase1.learning_rate=3e-4 --config.data.source_dir=my_photos/

Started again with the same --workdir, a run resumes from its last complete checkpoint.
On several hosts, pass --multihost on each (jax.distributed.initialize reads the
cluster from the environment) and give every host the same flags.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from artclf import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file under configs/.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and the config go.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  import jax  # After runtime.configure(): XLA reads its flags when the backend starts.
  if _MULTIHOST.value:
    jax.distributed.initialize()
  from artclf.train import trainer
  try:
    summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except trainer.TrainingDiverged as error:
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    return 1
  logging.info("Done: %s", summary)
  return 0


if __name__ == "__main__":
  app.run(main)
