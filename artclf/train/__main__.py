"""Trains artclf: python -m artclf.train --config=configs/NAME.py --workdir=DIR

Any config value can be overridden on the command line, e.g.
  --config.phase1.learning_rate=3e-4 --config.data.source_dir=my_photos/

Started again with the same --workdir, a run resumes from its last complete checkpoint
(a config that would change the run is refused, and the run left as it was).

Several hosts: start the same command on each.
  --multihost                      the cluster comes from the environment (SLURM, TPU pods)
  --coordinator_address=HOST:PORT --num_processes=N --process_id=I
                                   a cluster made by hand (e.g. N processes on one machine)
"""

from absl import app, flags, logging
from ml_collections import config_flags

from artclf import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file under configs/.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and the config go.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a cluster found in the environment (jax.distributed.initialize()).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0, for a cluster made by hand.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the cluster.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the cluster.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  import jax  # After runtime.configure(): XLA reads its flags when the backend starts.
  if _COORDINATOR.value or _MULTIHOST.value:
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if jax.process_index() != 0:
      logging.set_verbosity(logging.WARNING)  # one host tells the story
  # pylint: disable=import-outside-toplevel  # JAX is configured by now.
  from artclf.models import imagenet
  from artclf.train import trainer, workdir
  try:
    summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except Exception as error:  # pylint: disable=broad-except
    # The expected failures (a full disk, a refused resume, bad data or config, missing
    # weights, a diverged loss) end in one line; anything else is a bug and keeps its
    # traceback.
    disk = workdir.disk_error(error)
    if disk is not None or isinstance(error, OSError):
      return runtime.report_error(workdir.describe_os_error(disk or error, _WORKDIR.value))
    if isinstance(error, (trainer.TrainingDiverged, imagenet.WeightsError, ValueError)):
      return runtime.report_error(error)
    raise
  logging.info("Done: %s", summary)
  return 0


if __name__ == "__main__":
  app.run(main)
