"""Handing freed memory back to the system after a request's pictures are decoded.

Decoding a large picture allocates hundreds of megabytes in blocks that glibc's malloc
keeps for reuse after they are freed, so a server's resident memory would stay at the
peak of its largest request. `release()` asks glibc to return them (malloc_trim); on a
system without glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _libc():
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  except OSError:
    return None
  return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def release() -> None:
  """Returns the heap's free memory to the system (where glibc is the allocator)."""
  if _LIBC is not None:
    _LIBC.malloc_trim(0)
