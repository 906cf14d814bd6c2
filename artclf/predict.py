"""Predicts culture, medium and period of photos: python -m artclf.predict --workdir=DIR photo.jpg folder/

  python -m artclf.predict --workdir=checkpoints/cpu_quick photo.jpg folder/ [--output=out.csv]
  python -m artclf.predict --workdir=... --explain=heatmaps/ photo.jpg   # Grad-CAM overlays
  python -m artclf.predict --workdir=... --neighbours=5 photo.jpg --output=out.csv  # similar training photos
  python -m artclf.predict --workdir=... collection/ --output=out.csv --resume  # tens of thousands

From Python, `artclf.predict(...)` (see `artclf.serve.predict`). An unreadable file is
reported on its own line and the rest are still predicted; the exit status is 1 if any
input failed, 2 if the model cannot be loaded or the output cannot be written.
"""

from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (its best checkpoint is used).",
                               required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Also write the results to this .csv or .json file.")
_EXPLAIN = flags.DEFINE_string("explain", None,
                               "Write Grad-CAM overlays (PNG, one per task) to this folder.")
_TTA = flags.DEFINE_bool("tta", None, "Average with the horizontally mirrored image "
                         "(default: as the temperatures were fitted by evaluate).")
_RESUME = flags.DEFINE_bool("resume", False,
                            "Skip the images the --output file already holds, and append.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per forward pass.")
_THREADS = flags.DEFINE_integer("threads", 4, "Threads decoding images ahead of the model.")
_NEIGHBOURS = flags.DEFINE_integer(
    "neighbours", 0, "Also give each image's k nearest training photos (a `neighbours` "
    "column of object ids in the CSV, full records in JSON).", lower_bound=0)


def main(argv) -> int:
  if len(argv) < 2:
    raise app.UsageError("give one or more images or folders")
  runtime.configure()
  from artclf.serve import collection  # After runtime.configure(): it starts JAX.
  try:
    return collection.run_cli(argv[1:], _WORKDIR.value, _OUTPUT.value, _EXPLAIN.value,
                              _TTA.value, _RESUME.value, _BATCH_SIZE.value, _THREADS.value,
                              neighbours=_NEIGHBOURS.value)
  except (FileNotFoundError, ValueError) as error:  # no workdir, no checkpoint, or another config
    return runtime.report_error(error, status=2)


if __name__ == "__main__":
  app.run(main)
