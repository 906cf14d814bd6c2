"""The device mesh of data parallelism, and moving arrays on and off it.

A 1-D `jax.sharding.Mesh` over every device of every host, with the axis 'data'. Batches
are split along 'data'; parameters, optimiser state and RNG are replicated. The same
code runs on one CPU, on 8 simulated CPU devices and on several hosts: each host feeds
and reads back only its own block of every batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def put_replicated(tree, mesh: Mesh):
  """Every array of `tree` on every device of the mesh (each host passes the same values)."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def replicate(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x  # already global, e.g. restored onto the mesh
    # device_put cannot address other hosts' devices: build the global array from this
    # host's copy.
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), np.shape(x))
  return jax.tree.map(replicate, tree)


def to_global(local: Mapping[str, Any], mesh: Mesh) -> dict:
  """Assembles each host's block of rows into global arrays sharded over 'data'."""
  sharding = data_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), dict(local))


def to_local(outputs, mesh: Mesh):
  """This host's rows of data-sharded outputs, as numpy arrays."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, jax.device_get(outputs))
  local = multihost_utils.global_array_to_host_local_array(outputs, mesh, P(DATA_AXIS))
  return jax.tree.map(np.asarray, local)


def fetch_replicated(tree):
  """Replicated arrays -> numpy on every host (metrics, parameters to save or compare)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def on_every_host(flag: bool) -> bool:
  """Whether `flag` holds on every host (each host passes its own), so all take one branch."""
  if jax.process_count() == 1:
    return flag
  return bool(np.min(multihost_utils.process_allgather(np.int32(flag))))
