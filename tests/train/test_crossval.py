"""Leaving records out of training (config.data.exclude) and leave-one-source-out validation."""

import json

import numpy as np
import pytest

from artclf.data import dataset
from artclf.eval import evaluation
from artclf.train import crossval, trainer
from configs import tiny
from tests.data import fixtures as data_fixtures


@pytest.fixture(scope="module")
def museum_data(tmp_path_factory):
  root = tmp_path_factory.mktemp("museums")
  return dataset.ensure_built(dataset_config(data_fixtures.build_synthetic(
      root, num_train=30, num_val=12, museums=("met", "cle", "aic"))))


def dataset_config(data_dir):
  config = tiny.get_config().data
  config.data_dir = str(data_dir)
  config.source_dir = ""
  return config


def test_exclude_drops_exactly_the_matching_records(museum_data):
  full = dataset.open_split(museum_data, "train")
  kept = dataset.open_split(museum_data, "train", exclude="museum=met|aic")
  assert len(kept) == 10 and len(full) == 30
  assert set(dataset.column_values(kept, "museum")) == {"cle"}
  paintings = dataset.filtered(full, "medium=painting", keep_matching=True)
  assert set(dataset.column_values(paintings, "medium")) == {"painting"}


@pytest.mark.parametrize("rule", ["museum", "=met", "museum="])
def test_a_malformed_rule_is_named(rule):
  with pytest.raises(ValueError, match="column=value"):
    dataset.parse_rule(rule)


def test_only_sources_that_share_a_culture_are_held_out(museum_data):
  source = dataset.open_split(museum_data, "train+val")
  assert crossval.holdout_values(source, "museum", min_images=1) == ["aic", "cle", "met"]
  assert crossval.holdout_values(source, "museum", min_images=15) == []  # 14 each


def test_crossval_trains_without_each_source_and_scores_it(museum_data, tmp_path):
  config = tiny.get_config()
  config.data.data_dir, config.data.source_dir = str(museum_data.parent.parent), ""
  config.data.max_examples = 0
  config.phase1.epochs, config.phase2.epochs = 1, 0
  config.familiarity.enabled = False
  result = crossval.run(config, tmp_path, "museum", min_images=1)
  assert sorted(result["folds"]) == ["aic", "cle", "met"]
  assert all(fold["images"] == 14 for fold in result["folds"].values())
  saved = json.loads((tmp_path / "holdout_met" / "config.json").read_text())
  assert saved["data"]["exclude"] == "museum=met"
  assert json.loads((tmp_path / "crossval.json").read_text())["mean"] == pytest.approx(
      result["mean"])
  means = [np.mean([f[k] for f in result["folds"].values()]) for k in result["mean"]]
  np.testing.assert_allclose(list(result["mean"].values()), means)
  # evaluate --select scores the same held-out records as crossval did (val split part).
  report = evaluation.evaluate(tmp_path / "holdout_met", "val", calibration_split="",
                               output_dir=tmp_path / "eval", select="museum=met")
  assert report["num_images"] == 4
