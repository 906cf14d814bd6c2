"""An ASGI middleware that refuses request bodies over a byte limit with 413.

A declared Content-Length over the limit is refused before any byte is read. A body
without one (chunked) is counted as it arrives: past the limit the app gets an empty
end of body, and whatever it answers is replaced by the 413, so nothing past the limit
is ever buffered or spooled to disk.
"""

from __future__ import annotations

import json


class BodyLimitMiddleware:

  def __init__(self, app, max_bytes: int):
    self.app = app
    self.max_bytes = max_bytes

  def _message(self) -> bytes:
    return json.dumps({"error": f"the request is over the limit of {self.max_bytes} bytes"}).encode()

  async def _refuse(self, send) -> None:
    body = self._message()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      await self.app(scope, receive, send)
      return
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
      await self._refuse(send)
      return
    received = 0
    exceeded = False

    async def counting_receive():
      nonlocal received, exceeded
      if exceeded:
        return {"type": "http.request", "body": b"", "more_body": False}
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > self.max_bytes:
          exceeded = True
          return {"type": "http.request", "body": b"", "more_body": False}
      return message

    started = refused = False

    async def guarded_send(message):
      nonlocal started, refused
      if exceeded and not started:  # the app's answer to a cut-off body is replaced
        if not refused:
          refused = True
          await self._refuse(send)
        return
      started = True
      await send(message)

    await self.app(scope, counting_receive, guarded_send)
    if exceeded and not started and not refused:
      await self._refuse(send)
