"""Process-wide runtime settings applied by artclf's entry points before JAX starts.

Keeps third-party INFO chatter (orbax, absl in grain) out of the training log, so the
lines a user reads are artclf's own.
"""

import logging as std_logging
import os

_QUIET_PATHS = (os.sep + "orbax" + os.sep, os.sep + "grain" + os.sep, os.sep + "jax" + os.sep,
                os.sep + "tensorflow_datasets" + os.sep)


class _LibraryInfoFilter(std_logging.Filter):
  """Drops INFO records logged from inside orbax, grain, jax and TFDS (warnings pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or not any(p in record.pathname for p in _QUIET_PATHS)


def configure() -> None:
  """Call once at the start of an entry point's main()."""
  from absl import logging
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _LibraryInfoFilter) for f in handler.filters):
    handler.addFilter(_LibraryInfoFilter())
