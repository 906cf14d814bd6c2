"""Leaving records out of training (config.data.exclude) and leave-one-source-out validation."""

import json

import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.data import dataset
from artclf.eval import evaluation
from artclf.run import trained
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


def test_a_source_is_held_out_only_if_training_keeps_every_class(museum_data):
  source = dataset.open_split(museum_data, "train+val")
  train = dataset.open_labelled(museum_data, "train", scheme_lib.DEFAULT)
  assert crossval.holdout_values(source, train, "museum", scheme_lib.DEFAULT, 1) == [
      "aic", "cle", "met"]
  assert crossval.holdout_values(source, train, "museum", scheme_lib.DEFAULT, 15) == []  # 14 each


def test_a_source_that_alone_has_a_class_is_not_held_out():
  records = [{"museum": m.encode(), "metadata_json": b"{}"} for m in ("a", "a", "b", "b", "c")]
  culture = np.array([0, 1, 0, 2, 1], np.int32)  # roman (2) only at b
  train = dataset.LabelledSplit("train", records, {"culture": culture})
  scheme = scheme_lib.LabelScheme(("culture",), (("egyptian", "greek", "roman"),))
  assert crossval.holdout_values(records, train, "museum", scheme, 1) == ["a", "c"]


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
  report = evaluation.evaluate(trained.load(tmp_path / "holdout_met"), "val",
                               output_dir=tmp_path / "eval", select="museum=met")
  assert report["num_images"] == 4
