"""The forward passes of a model outside training, each written once and jitted.

  run = forward.jit_outputs(graphdef, mesh, start_stage=0, flip_tta=False)
  run(state, {'image': uint8 views})   # {'logits': {task: [B, C]}, 'pooled': [B, D]}

`outputs` is the one inference forward: every head's logits and the pooled vector the
heads read (for familiarity, neighbours and the shortcut report), from images or, with
start_stage > 0, from cached outputs of the frozen stages ({'features': {net: ...}}).
Validation during training, the calibration and familiarity fits, evaluate, predict, the
page and adapt all run it. `jit_frozen_features` is the frozen stages alone, whose
outputs the feature cache keeps.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from flax import nnx

from artclf.data import feature_cache
from artclf.mesh import data_sharded, put_replicated
from artclf.models import classifier


def outputs(model, inputs: dict, start_stage: int = 0, flip_tta: bool = False) -> dict:
  """{'logits': {task: [B, C]}, 'pooled': [B, D]} of a batch, without training behaviour.

  Flip TTA averages the logits with the mirrored images'; `pooled` is the view's own.
  """
  x = inputs["image"] if start_stage == 0 else inputs["features"]
  logits, pooled = model.logits_and_pooled(x, start_stage)
  if flip_tta:
    if start_stage:
      raise ValueError("flip TTA needs images, not cached features")
    mirrored, _ = model.logits_and_pooled(x[:, :, ::-1, :])
    logits = {task: (logits[task] + mirrored[task]) / 2 for task in logits}
  return {"logits": logits, "pooled": pooled}


def jit_outputs(graphdef: nnx.GraphDef, mesh, start_stage: int = 0,
                flip_tta: bool = False) -> Callable:
  """(model state, inputs sharded over the mesh's 'data' axis) -> `outputs`, jitted."""
  @functools.partial(jax.jit, out_shardings=data_sharded(mesh))
  def run(state, inputs):
    return outputs(nnx.merge(graphdef, state), inputs, start_stage, flip_tta)
  return run


def jit_frozen_features(model, end_stage: int, mesh) -> Callable:
  """A jitted {'image': views} -> {net name: output of stage end_stage - 1}, data-sharded;
  at end_stage == model.pooled_stage, the pooled vectors the heads read (float32).

  Nets whose trunks hold identical weights (the ImageNet-initialised submodels) share
  one computation.
  """
  pooled = end_stage == model.pooled_stage
  trunk_end = model.num_stages if pooled else end_stage
  groups: dict[str, list[str]] = {}
  for name, net in model.nets.items():
    trunk_arrays = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.state(net.trunk)))]
    groups.setdefault(feature_cache.cache_key({}, trunk_arrays), []).append(name)
  graphdef = nnx.graphdef(model.nets[next(iter(groups.values()))[0]].trunk)
  states = {names[0]: put_replicated(nnx.state(model.nets[names[0]].trunk), mesh)
            for names in groups.values()}

  @functools.partial(jax.jit, out_shardings=data_sharded(mesh))
  def run(states, images):
    outputs = {name: nnx.merge(graphdef, state)(images, end_stage=trunk_end)
               for name, state in states.items()}
    return {name: classifier.average_pool(x) if pooled else x for name, x in outputs.items()}

  def apply(inputs: dict) -> dict:
    computed = run(states, inputs["image"])
    return {name: computed[names[0]] for names in groups.values() for name in names}
  return apply
