"""Runs the app under uvicorn with the connection limits of configs/serve.py.

uvicorn times out idle kept-alive connections, but not a client that sends a request's
headers a byte at a time (slowloris): `HeaderDeadlineProtocol` closes a connection
whose request head has not fully arrived `header_timeout_seconds` after the connection
opened or the previous answer ended. The head's size (`max_header_bytes`), the idle
time (`keep_alive_seconds`) and the open connections (`max_connections`) are bounded too.
"""

from __future__ import annotations

import h11
import ml_collections
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
  """uvicorn's h11 protocol with a deadline for each request's head (see the module)."""

  header_timeout = 10.0

  def connection_made(self, transport) -> None:
    super().connection_made(transport)
    self._answered = 0
    self._arm_header_deadline()

  def on_response_complete(self) -> None:
    self._answered += 1
    super().on_response_complete()
    self._arm_header_deadline()

  def _arm_header_deadline(self) -> None:
    self.loop.call_later(self.header_timeout, self._header_deadline, self._answered)

  def _header_deadline(self, answered: int) -> None:
    """Closes the connection if it answered nothing since the deadline was armed and the
    client has still not sent a whole request head (h11 waits for one while IDLE)."""
    if (answered == self._answered and self.conn.their_state is h11.IDLE
        and not self.transport.is_closing()):
      self.transport.close()


def protocol_class(header_timeout: float) -> type:
  return type("ArtclfH11Protocol", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})


def config(app, host: str, port: int, settings: ml_collections.ConfigDict) -> uvicorn.Config:
  return uvicorn.Config(
      app, host=host, port=port, log_level="info",
      http=protocol_class(settings.header_timeout_seconds),
      timeout_keep_alive=settings.keep_alive_seconds,
      h11_max_incomplete_event_size=settings.max_header_bytes,
      limit_concurrency=settings.max_connections)


def run(app, host: str, port: int, settings: ml_collections.ConfigDict) -> None:
  uvicorn.Server(config(app, host, port, settings)).run()
