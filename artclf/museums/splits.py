"""train / val / test, by object group: no object (or monument, or site) is in two splits.

Museum objects: u = (first 4 bytes of sha256(object_id) as a big-endian integer) / 2**32;
u < 0.15 -> val, u < 0.30 -> test, else train (about 70/15/15). An object keeps its split
when others are added or removed and across rebuilds, and every photograph of one object
(they share its object_id) goes with it.

Commons monuments: there are only some fifty sites, too few for a threshold on a hash to
give every culture and period a test site. They are split as the shared ancient_art set
splits its groups: within each (culture, period) stratum the site groups are ordered by
sha256 of their name; the first 15% (rounded half up) go to val, the next 15% to test, the
rest to train, and a stratum of three groups or fewer stays in train. A site's stratum is
the (culture, period) most of its monuments have (ties: the first listed).
"""

from __future__ import annotations

import collections
import hashlib
import math

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
SMALLEST_SPLIT_STRATUM = 4


def _digest(name: str) -> bytes:
  return hashlib.sha256(name.encode()).digest()


def hashed_split(object_id: str) -> str:
  """The museums' rule (module docstring)."""
  u = int.from_bytes(_digest(object_id)[:4], "big") / 2**32
  if u < VAL_FRACTION:
    return "val"
  if u < VAL_FRACTION + TEST_FRACTION:
    return "test"
  return "train"


def _round_half_up(x: float) -> int:
  return math.floor(x + 0.5)


def stratified_splits(strata: dict[str, tuple]) -> dict[str, str]:
  """group -> split, for groups labelled with their stratum (module docstring)."""
  by_stratum = collections.defaultdict(list)
  for group, stratum in strata.items():
    by_stratum[stratum].append(group)
  splits = {}
  for groups in by_stratum.values():
    groups.sort(key=_digest)
    n_val = n_test = 0
    if len(groups) >= SMALLEST_SPLIT_STRATUM:
      n_val = _round_half_up(len(groups) * VAL_FRACTION)
      n_test = _round_half_up(len(groups) * TEST_FRACTION)
    for i, group in enumerate(groups):
      splits[group] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
  return splits


def group_strata(members: list[tuple[str, tuple]]) -> dict[str, tuple]:
  """group -> its most common stratum, from (group, stratum) pairs in listed order."""
  counts = collections.defaultdict(collections.Counter)
  first_seen = collections.defaultdict(dict)
  for group, stratum in members:
    counts[group][stratum] += 1
    first_seen[group].setdefault(stratum, len(first_seen[group]))
  return {group: max(c, key=lambda s: (c[s], -first_seen[group][s]))
          for group, c in counts.items()}
