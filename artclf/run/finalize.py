"""What a run needs beyond its weights, fitted once its best weights are known.

  * calibration.json: one temperature per head, fitted on the validation split's logits
    (`artclf.eval.calibration`), with the split's calibration errors before and after;
  * familiarity.npz: the familiarity scorer, fitted on the training split's outputs with
    the validation split as its reference (`artclf.eval.familiarity`).

Training calls `fit_and_save` at its end and an adapted run at its own; both pass the
outputs of the one forward pass (`artclf.run.forward.outputs`) on the evaluation views,
whether computed from images or from cached features of the frozen stages.
"""

from __future__ import annotations

import json
import pathlib

from absl import logging

from artclf import scheme as scheme_lib
from artclf.eval import calibration
from artclf.eval import familiarity as familiarity_lib
from artclf.run import files


def settings_key(config, best_step: int) -> str:
  """What the fitted files depend on besides the data: the best step and the settings."""
  return json.dumps({"best_step": best_step, "familiarity": config.familiarity.to_dict()},
                    sort_keys=True)


def up_to_date(workdir: pathlib.Path, config, best_step: int) -> bool:
  """Whether both files were fitted on this best step with these settings."""
  calibration_path = workdir / files.CALIBRATION_FILE
  try:
    fitted = json.loads(calibration_path.read_text())
  except (OSError, ValueError):
    return False
  return fitted.get("settings_key") == settings_key(config, best_step) and (
      not config.familiarity.enabled or (workdir / files.FAMILIARITY_FILE).exists())


def fit_and_save(workdir: pathlib.Path, config, scheme: scheme_lib.LabelScheme, best_step: int,
                 train: dict, val: dict, write: bool = True) -> None:
  """Fits and writes calibration.json and (if enabled) familiarity.npz.

  train, val: {'logits': {task: [N, C]}, 'pooled': [N, D], 'labels': {task: [N]}}.
  `write` is False on every host but the first.
  """
  fitted = calibration.fit_record(val["logits"], val["labels"], scheme.tasks, "val")
  fitted["settings_key"] = settings_key(config, best_step)
  familiarity = None
  if config.familiarity.enabled:
    try:
      familiarity = familiarity_lib.fit(config.familiarity, train, val)
    except ValueError as error:  # too little data: the model is kept, without familiarity
      logging.warning("No familiarity fitted: %s", error)
  if not write:
    return
  path = workdir / files.FAMILIARITY_FILE
  if familiarity is not None:
    familiarity.best_step = best_step
    familiarity.settings = json.dumps(config.familiarity.to_dict(), sort_keys=True)
    familiarity.save(path)
    logging.info("Familiarity (%s) fitted on the train split: %s", config.familiarity.method,
                 path)
  elif path.exists():
    path.unlink()  # an older fit would not match these weights
  files.write_json(workdir / files.CALIBRATION_FILE, fitted)
  logging.info("Temperatures fitted on the validation split: %s",
               {t: round(v, 3) for t, v in fitted["temperatures"].items()})
