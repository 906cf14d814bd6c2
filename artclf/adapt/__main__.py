"""Adapts a trained run to a collection's corrections:

  python -m artclf.adapt --workdir=BASE --labels=CSV --out=NEW [--holdout_fraction=0.2]
      [--config=configs/adapt.py] [--config.example_weight=5]

Writes a complete run to NEW (config, best checkpoint, calibration, familiarity, its
lineage) that predict, evaluate, serve and a further adapt accept, and prints the
before/after figures on the held-out rows (saved in NEW/adapt_summary.json). BASE is
never modified; see `artclf.adapt.adapter`.
"""

from absl import app, flags
from ml_collections import config_flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "The base run.", required=True)
_LABELS = flags.DEFINE_string("labels", None, "The corrections CSV (image, one column per task).",
                              required=True)
_OUT = flags.DEFINE_string("out", None, "Where the adapted run goes (a new folder).", required=True)
_HOLDOUT = flags.DEFINE_float("holdout_fraction", None, "Share of the rows held out per class "
                              "for the before/after figures (default: configs/adapt.py's, 0.2); "
                              "0 trains on every row.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/adapt.py or another adapt "
                                          "config (default: configs/adapt.py).", lock_config=False)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  from artclf.adapt import adapter  # pylint: disable=import-outside-toplevel  # starts JAX
  overrides = _CONFIG.value.to_dict() if _CONFIG.value is not None else None
  try:
    adapter.adapt(_WORKDIR.value, _LABELS.value, _OUT.value, holdout_fraction=_HOLDOUT.value,
                  config_overrides=overrides, photos_as_neighbours=True)
  except (FileNotFoundError, ValueError) as error:
    return runtime.report_error(error)
  return 0


if __name__ == "__main__":
  app.run(main)
