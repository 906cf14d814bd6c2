"""artclf: culture, medium and period of ancient artworks from a photo (or a collection's
own labels: see `artclf.scheme`).

  import artclf
  artclf.predict("photo.jpg", workdir="checkpoints/cpu_quick")

Importing artclf has no side effects: JAX starts, and XLA flags are set, only in the
entry points (`python -m artclf.train`, `artclf.evaluate`, `artclf.predict`, ...).
"""

from artclf.scheme import DEFAULT as DEFAULT_SCHEME, LabelScheme  # noqa: F401  (public names)

__version__ = "0.1.0"


def predict(images, workdir=None, **kwargs):
  """Labels and probabilities for one image or many; see `artclf.serve.predict.predict`."""
  from artclf.serve import predict as predict_lib  # Deferred: pulls in JAX.
  return predict_lib.predict(images, workdir=workdir, **kwargs)
