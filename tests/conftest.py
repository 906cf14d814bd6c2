"""Shared test fixtures: where the real data and the real weights live."""

import os
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Tests import the configs (configs/*.py) and each other's helpers (tests/*.py) as packages.
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

# The shared, labelled set lives beside the checkout (never copied into the repo).
SHARED_DATA_DIR = pathlib.Path(
    os.environ.get("ARTCLF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data" / "ancient_art"))


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  if not (SHARED_DATA_DIR / "labels.csv").exists():
    pytest.skip(f"shared data set not found at {SHARED_DATA_DIR} (set ARTCLF_SHARED_DATA)")
  return SHARED_DATA_DIR
