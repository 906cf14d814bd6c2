"""Predicts culture, medium and period of photos: python -m artclf.predict --workdir=DIR photo.jpg folder/

  python -m artclf.predict --workdir=checkpoints/cpu_quick photo.jpg folder/ [--output=out.csv]
  python -m artclf.predict --workdir=... --explain=heatmaps/ photo.jpg   # Grad-CAM overlays

From Python, `artclf.predict(...)` (see `artclf.serve.predict`). An unreadable file is
reported on its own line and the rest are still predicted; the exit status is 1 if any
input failed, 2 if the model cannot be loaded.
"""

import sys

from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (its best checkpoint is used).",
                               required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Also write the results to this .csv or .json file.")
_EXPLAIN = flags.DEFINE_string("explain", None,
                               "Write Grad-CAM overlays (PNG, one per task) to this folder.")
_TTA = flags.DEFINE_bool("tta", False, "Average with the horizontally mirrored image.")


def main(argv) -> int:
  if len(argv) < 2:
    raise app.UsageError("give one or more images or folders")
  runtime.configure()
  from artclf.serve import predict  # After runtime.configure(): it starts JAX.
  try:
    return predict.run_cli(argv[1:], _WORKDIR.value, _OUTPUT.value, _EXPLAIN.value, _TTA.value)
  except FileNotFoundError as error:  # No such workdir, or no trained checkpoint in it.
    print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  app.run(main)
