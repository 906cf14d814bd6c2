"""Every config file loads, says how to run it, and names only settings artclf knows and uses."""

import dataclasses
import importlib
import pathlib

import pytest
from flax import nnx

from artclf import scheme as scheme_lib
from artclf.data import transforms
from artclf.models import classifier as model_lib
from artclf.models import trunks
from artclf.train import optimizer, trainer

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
SERVE_CONFIG = "serve"  # the web page's settings; every other config describes a training run
ADAPT_CONFIG = "adapt"  # artclf.adapt's settings
TRAINING_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py")
                          if p.stem not in ("__init__", "common", SERVE_CONFIG, ADAPT_CONFIG))


def test_there_are_configs():
  assert {"cpu_quick", "default", "submodels", "paper", "tiny"} <= set(TRAINING_CONFIGS)


def _num_stages(model_config) -> int:
  """The real model's trunk stages (abstract shapes only, nothing allocated)."""
  spec = model_lib.ModelSpec.from_config(model_config, scheme_lib.DEFAULT.heads)
  return nnx.eval_shape(lambda: model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))).num_stages


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_config_is_documented_and_valid(name):
  module = importlib.import_module(f"configs.{name}")
  assert f"--config=configs/{name}.py" in (module.__doc__ or ""), "docstring lacks its command"
  config = module.get_config()
  model_fields = {f.name for f in dataclasses.fields(model_lib.ModelSpec)} | {"pretrained"}
  assert set(config.model.keys()) <= model_fields
  trunks.num_features(config.model.trunk)  # a known trunk
  assert set(config.data.augment.keys()) <= {f.name for f in dataclasses.fields(transforms.AugmentConfig)}
  transforms.from_config(config.data.augment)
  num_stages = _num_stages(config.model)
  for phase in (config.phase1, config.phase2):
    if phase.epochs:
      optimizer.first_trainable_stage(phase.trainable, num_stages)
  optimizer.make_optimizer(config.optimizer, lambda step: 1e-3)  # adam refuses weight decay
  assert config.selection_metric in trainer.SELECTION_METRICS


def test_trainable_settings_are_checked_against_the_real_number_of_stages():
  assert _num_stages({"trunk": "resnet50"}) == 5  # conv1 (the stem) .. conv5
  optimizer.first_trainable_stage("last:5", 5)
  with pytest.raises(ValueError, match="5 stages"):
    optimizer.first_trainable_stage("last:6", 5)


def test_serve_config_is_documented_and_has_positive_limits():
  module = importlib.import_module(f"configs.{SERVE_CONFIG}")
  assert f"--config=configs/{SERVE_CONFIG}.py" in module.__doc__
  config = module.get_config()
  for key in ("max_file_bytes", "max_request_bytes", "max_pixels", "max_batch_size",
              "url_timeout_seconds", "url_max_bytes"):
    assert config[key] > 0, key
  assert 0 < config.low_confidence_threshold < 1
