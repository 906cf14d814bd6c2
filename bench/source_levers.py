"""Levers against the source shortcut, judged by leave-one-source-out on cached features.

  PYTHONPATH=. python bench/source_levers.py [--levers=base,std,std_bars,...] \
      [--seeds=0,1,2] [--holdouts=aic,cle,getty,met] [--out=docs/source_levers.md]

For each lever and seed, the heads of `configs/cpu_quick.py` (one linear head per task on
the ResNet50's pooled features of the evaluation view, class-weighted cross-entropy with
the config's head_l2, Adam with its schedule, its epochs and batch size, selection on the
validation mean balanced accuracy averaged over its selection_window) are fitted once per
held-out museum, without that museum's train and val rows, and scored on all its rows
(every split); and once on the whole train split, scored on test. Features come from
`bench/feature_bank.py` (cached; computed once per view setting). The levers:

  bars        crop letterbox bars first (data.augment.crop_bars)
  std         standardise the pooled features (model.standardize)
  balanced    sample rows with weights 1 / count(museum, culture)
  adv=L       a learned linear map (2048 -> `hidden`) before the heads, and one museum head
              per culture on it through gradient reversal of strength L (adv=0: the map
              alone, the control)
  sqrt, l2    signed square root, or unit length, of each feature vector first
  droppc=K    the K leading principal directions of the standardised features projected out
  l2reg=X     the heads' L2 penalty X instead of the config's head_l2
  erase       train on --erase_views views with the source-erasing augmentations
              (lever_heads.ERASING: backdrop colour, white balance, bars, down-up sampling,
              JPEG quality, greyscale), one per epoch in turn, as the trainer does
  erasemix    the same, with the evaluation view among the views

A lever name joins them with '+': 'std+bars+adv=3'. The numbers are this harness's (a
stand-in for `artclf.crossval`, which recomputes the trunk for every fold); compare levers
with each other here, and check the winner with artclf.crossval when there is time.
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

from artclf import runtime

_LEVERS = flags.DEFINE_list("levers", ["base", "std", "bars", "std+bars", "std+bars+balanced",
                                       "std+bars+adv=0", "std+bars+adv=1", "std+bars+adv=3"],
                            "Lever combinations to try (see the module docstring).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the heads' initialisation and order.")
_HOLDOUTS = flags.DEFINE_list("holdouts", ["aic", "cle", "getty", "met"], "Museums held out in turn.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Width of the learned map of the adv levers.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Built dataset folder.")
_ERASE_VIEWS = flags.DEFINE_integer("erase_views", 4, "Augmented views per training image of "
                                    "the erase levers.")
_OUT = flags.DEFINE_string("out", "", "Write the per-source table (markdown) and a .json here.")


def main(argv) -> int:
  del argv
  runtime.configure()
  from bench import lever_heads  # pylint: disable=import-outside-toplevel  # starts JAX
  from configs import cpu_quick  # pylint: disable=import-outside-toplevel
  config = cpu_quick.get_config()
  banks = {}
  results = {}
  for lever in _LEVERS.value:
    settings = lever_heads.parse_lever(lever)
    bank_key = (settings["bars"], settings["erase"])
    if bank_key not in banks:
      banks[bank_key] = lever_heads.load_banks(_DATA_DIR.value, config, *bank_key,
                                               erase_views=_ERASE_VIEWS.value)
    start = time.time()
    lever_banks = lever_heads.with_normalised_features(banks[bank_key], settings["norm"])
    runs = [lever_heads.loso(lever_banks, config, settings, int(seed),
                             _HOLDOUTS.value, _HIDDEN.value) for seed in _SEEDS.value]
    results[lever] = lever_heads.summarise(runs)
    print(f"{lever}: {lever_heads.one_line(results[lever])}  ({time.time() - start:.0f} s)",
          flush=True)
  table = lever_heads.markdown(results, _HOLDOUTS.value, len(_SEEDS.value))
  print(table)
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      f.write(table)
    with open(_OUT.value.rsplit(".", 1)[0] + ".json", "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == "__main__":
  app.run(main)
