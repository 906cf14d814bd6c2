"""configure_xla_cpu appends flags, keeps the user's, and does nothing once JAX runs."""

import pytest

from artclf import runtime

FLAGS = {"xla_cpu_a": "1", "xla_cpu_b": "x,y"}


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
