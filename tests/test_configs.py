"""Every config file loads, says how to run it, and names only settings artclf knows."""

import dataclasses
import importlib
import pathlib

import pytest

from artclf.data import transforms
from artclf.models import classifier as model
from artclf.models import resnet
from artclf.train import optimizer

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
CONFIG_NAMES = sorted(p.stem for p in CONFIG_DIR.glob("*.py")
                      if p.stem not in ("__init__", "common"))


def test_there_are_configs():
  assert {"cpu_quick", "default", "submodels", "paper", "tiny"} <= set(CONFIG_NAMES)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_is_documented_and_valid(name):
  module = importlib.import_module(f"configs.{name}")
  assert f"--config=configs/{name}.py" in (module.__doc__ or ""), "docstring lacks its command"
  config = module.get_config()
  model_fields = {f.name for f in dataclasses.fields(model.ModelSpec)} | {"pretrained"}
  assert set(config.model.keys()) <= model_fields
  resnet.trunk_spec(config.model.trunk)
  assert set(config.data.augment.keys()) <= {f.name for f in dataclasses.fields(transforms.AugmentConfig)}
  transforms.from_config(config.data.augment)
  for phase in (config.phase1, config.phase2):
    if phase.epochs:
      optimizer.trainable_filter(phase.trainable, 6)
  assert config.selection_metric in ("mean_accuracy", "mean_balanced_accuracy",
                                     "all_three_accuracy", "last")
