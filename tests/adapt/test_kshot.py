"""k-shot leave-one-source-out (python -m artclf.crossval --shots=...)."""

import json

import numpy as np

from artclf import scheme as scheme_lib
from artclf.adapt import adapter, kshot
from configs import tiny
from tests.data import fixtures as data_fixtures


def test_k_photographs_per_class_with_two_k_are_drawn():
  labels = {"culture": np.array([0] * 6 + [1] * 3 + [2] * 4, np.int32),
            "medium": np.array([2] * 13, np.int32)}
  scheme = scheme_lib.LabelScheme(("culture", "medium"), (("a", "b", "c"), ("x", "y", "z")))
  chosen = kshot.draw_shots(labels, scheme, 2, seed=0)
  counts = np.bincount(labels["culture"][chosen], minlength=3)
  assert counts.tolist() == [2, 0, 2]  # b has 3 < 2k photographs
  assert kshot.draw_shots(labels, scheme, 2, seed=0).tolist() == chosen.tolist()
  assert kshot.draw_shots(labels, scheme, 2, seed=1).tolist() != chosen.tolist()
  assert kshot.draw_shots(labels, scheme, 0, seed=0).size == 0


def test_kshot_adapts_each_held_out_run_and_scores_the_rest(tmp_path):
  data_dir = data_fixtures.build_synthetic(tmp_path / "d", num_train=30, num_val=12,
                                           museums=("met", "cle", "aic"))
  config = tiny.get_config()
  config.data.data_dir, config.data.source_dir = str(data_dir), ""
  config.data.max_examples = 0
  config.phase1.epochs, config.phase2.epochs = 1, 0
  config.familiarity.enabled = False
  config.feature_cache.dir = str(tmp_path / "cache")
  settings = adapter.settings_from({"epochs": 2})
  result = kshot.run(config, tmp_path / "cv", "museum", [0, 1], draws=2, min_images=1,
                     settings=settings)
  assert sorted(result["folds"]) == ["aic", "cle", "met"]
  for fold in result["folds"].values():
    assert len(fold["0"]) == 1 and fold["0"][0]["scored"] == 14
    assert len(fold["1"]) == 2
    assert all(d["shots_used"] + d["scored"] == 14 and d["shots_used"] > 0 for d in fold["1"])
  saved = json.loads((tmp_path / "cv" / "kshot.json").read_text())
  assert saved["mean"].keys() == {"0", "1"}
  table = (tmp_path / "cv" / "kshot.md").read_text()
  assert "| mean | 1 |" in table and "±" in table
  assert (tmp_path / "cv" / "kshot.png").stat().st_size > 1000
