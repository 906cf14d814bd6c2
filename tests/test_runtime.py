"""configure_xla_cpu appends flags the jaxlib knows, keeps the user's, and does nothing once JAX
runs; importing artclf touches no flag."""

import os
import subprocess
import sys

import pytest

from artclf import runtime
from tests.conftest import REPO_ROOT

FLAGS = {"xla_cpu_a": "1", "xla_cpu_b": "x,y"}


@pytest.fixture(autouse=True)
def _every_flag_known(monkeypatch, request):
  if "real_probe" not in request.keywords:
    monkeypatch.setattr(runtime, "known_to_jaxlib", lambda flag: True)


@pytest.fixture(autouse=True)
def _xla_flags_restored():
  """configure_xla_cpu writes os.environ itself: put XLA_FLAGS back as it was, so that no
  made-up flag reaches the child processes of later tests (XLA aborts on them)."""
  before = os.environ.get("XLA_FLAGS")
  yield
  if before is None:
    os.environ.pop("XLA_FLAGS", None)
  else:
    os.environ["XLA_FLAGS"] = before


def test_appends_flags_and_keeps_user_values(monkeypatch):
  monkeypatch.setattr(runtime, "_jax_backend_started", lambda: False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_b=user --other=2")
  assert runtime.configure_xla_cpu(FLAGS) == ["--xla_cpu_a=1"]
  assert runtime.os.environ["XLA_FLAGS"] == "--xla_cpu_b=user --other=2 --xla_cpu_a=1"


def test_sets_flags_without_user_flags(monkeypatch):
  monkeypatch.setattr(runtime, "_jax_backend_started", lambda: False)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  runtime.configure_xla_cpu(FLAGS)
  assert runtime.os.environ["XLA_FLAGS"] == "--xla_cpu_a=1 --xla_cpu_b=x,y"


def test_warns_and_changes_nothing_after_backend_start(monkeypatch):
  monkeypatch.setattr(runtime, "_jax_backend_started", lambda: True)
  monkeypatch.setenv("XLA_FLAGS", "--other=2")
  with pytest.warns(RuntimeWarning, match="after JAX initialised"):
    assert runtime.configure_xla_cpu(FLAGS) == []
  assert runtime.os.environ["XLA_FLAGS"] == "--other=2"


def test_a_flag_the_jaxlib_does_not_know_is_left_out(monkeypatch):
  monkeypatch.setattr(runtime, "_jax_backend_started", lambda: False)
  monkeypatch.setattr(runtime, "known_to_jaxlib", lambda flag: "xla_cpu_a" not in flag)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  with pytest.warns(RuntimeWarning, match="does not know"):
    assert runtime.configure_xla_cpu(FLAGS) == ["--xla_cpu_b=x,y"]
  assert runtime.os.environ["XLA_FLAGS"] == "--xla_cpu_b=x,y"


@pytest.mark.real_probe
def test_the_probe_asks_the_installed_jaxlib(monkeypatch, tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert not runtime.known_to_jaxlib("--xla_artclf_no_such_flag=1")
  assert runtime.known_to_jaxlib("--xla_cpu_enable_fast_math=false")
  assert (tmp_path / "artclf" / "xla_flags.json").exists()  # asked once per jaxlib


def test_importing_artclf_leaves_xla_flags_alone():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=str(REPO_ROOT))
  code = ("import os, artclf, artclf.serve.predict, artclf.train.trainer; "
          "print(os.environ['XLA_FLAGS'])")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True, cwd=REPO_ROOT).stdout.strip()
  assert out == "--xla_force_host_platform_device_count=1"


def test_closed_event_loop_tracebacks_are_quiet_and_others_are_not():
  import asyncio  # pylint: disable=import-outside-toplevel
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as error:
    closed = error
  seen = []
  excepthook, unraisablehook = runtime._quiet_closed_loop_errors(  # pylint: disable=protected-access
      lambda *args: seen.append(args[1]), lambda args: seen.append(args.exc_value))
  excepthook(RuntimeError, closed, closed.__traceback__)
  other = ValueError("a real bug")
  excepthook(ValueError, other, None)
  unraisable = type("Unraisable", (), {"exc_type": RuntimeError, "exc_value": closed,
                                        "exc_traceback": closed.__traceback__})
  unraisablehook(unraisable())
  assert seen == [other]
