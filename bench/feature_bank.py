"""Pooled ImageNet features of a split, per trunk and view, cached: what the probes fit on.

  bank = feature_bank.pooled(data_dir, "train", trunk="resnet50", views=[None, 0, 1])
  bank["features"]   # float32 [len(views), N, D]: the global average pool of the last stage
  bank["labels"]     # {task: int32 [N]}
  bank["metadata"]   # {'museum': [...], 'object_id': [...], 'begin_year': [...], ...}

View None is the evaluation view, view k the k-th augmented training view (the pipeline's
epoch k), as the feature cache makes them. Features come from the trunk with its ImageNet
weights through the one inference loop (`artclf.inference`), and are cached under
checkpoints/feature_cache keyed by data, trunk, image size and views.
"""

from __future__ import annotations

import functools
import json

import numpy as np

DEFAULT_SIZES = {"resnet50": 224, "efficientnet_lite0": 224, "efficientnet_lite2": 260}


@functools.lru_cache(maxsize=4)
def _trunk_apply(trunk: str):
  """A jitted pixels -> GAP features of trunk `trunk` with ImageNet weights, on this host's devices."""
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from artclf import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from artclf.models import trunks  # pylint: disable=import-outside-toplevel
  module = trunks.build_trunk(trunk, rngs=nnx.Rngs(0))
  trunks.load_imagenet_weights([module], trunk)
  mesh = mesh_lib.make_mesh(jax.local_devices())
  graphdef, state = nnx.split(module)
  state = mesh_lib.put_replicated(state, mesh)

  @functools.partial(jax.jit, out_shardings=mesh_lib.data_sharded(mesh))
  def run(state, images):
    return nnx.merge(graphdef, state)(images).mean(axis=(1, 2))

  frozen = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.state(module)))]
  return (lambda inputs: {"gap": run(state, inputs["image"])}), mesh, frozen


def pooled(data_dir, split: str, trunk: str = "resnet50", views=(None,), image_size: int | None = None,
           seed: int = 0, augment: dict | None = None, cache_dir: str = "checkpoints/feature_cache",
           batch_size: int = 32) -> dict:
  """{'features': [V, N, D], 'labels', 'metadata'} of `split` (see the module docstring)."""
  from artclf import scheme  # pylint: disable=import-outside-toplevel
  from artclf.data import dataset, feature_cache, tfds_builder, transforms  # pylint: disable=import-outside-toplevel
  image_size = image_size or DEFAULT_SIZES.get(trunk, 224)
  config = transforms.from_config({**(augment or {}), "image_size": image_size})
  source = tfds_builder.open_split(data_dir, split)
  label_ids = dataset.read_labels(source, scheme.DEFAULT)
  apply, mesh, frozen = _trunk_apply(trunk)
  key = feature_cache.cache_key({"bank": "gap", "trunk": trunk, "views": list(views),
                                 "augment": str(config), "seed": seed,
                                 "data": feature_cache.source_digest(source, label_ids)}, frozen)
  computed = feature_cache.load_or_compute(cache_dir, key, lambda: feature_cache.compute_features(
      apply, source, list(views), config, seed, batch_size, mesh, np.float32,
      what=f"{trunk} {split} pools"))
  return {"features": np.asarray(computed["gap"], np.float32),
          "labels": label_ids, "metadata": metadata(source)}


def metadata(source) -> dict[str, list]:
  """Per record: museum, object_id, and begin/end years (None where unknown)."""
  columns = {"museum": [], "object_id": [], "begin_year": [], "end_year": []}
  for index in range(len(source)):
    record = source[index]
    columns["museum"].append(record["museum"].decode())
    columns["object_id"].append(record["object_id"].decode())
    extra = json.loads(record["metadata_json"].decode())
    for name in ("begin_year", "end_year"):
      value = extra.get(name, "")
      columns[name].append(float(value) if value not in ("", None) else None)
  return columns
