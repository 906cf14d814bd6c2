"""artclf: culture, medium and period of ancient artworks from a photo."""

from artclf import runtime as _runtime
from artclf.labels import CLASSES, TASKS  # noqa: F401  (public names)

# The XLA CPU flags artclf is tuned for (see artclf/runtime.py), for library users too;
# a no-op if JAX is already running or the user set those flags.
_runtime.configure_xla_cpu(warn=False)

__version__ = "0.1.0"


def __getattr__(name):
  # `artclf.predict(...)`: the predict module is callable (see artclf/predict.py) and
  # imported on first use, so that `import artclf` stays light.
  if name == "predict":
    import importlib
    return importlib.import_module("artclf.predict")
  raise AttributeError(f"module 'artclf' has no attribute {name!r}")
