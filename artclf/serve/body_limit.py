"""An ASGI middleware that refuses request bodies over a byte limit with 413.

Any body but a multipart upload (JSON, or a body without a Content-Type, which FastAPI
parses as JSON) has its own, smaller limit, checked the same way, so that no oversized
JSON is ever parsed.

A declared Content-Length over the limit is refused before any byte is read. A body
without one (chunked) is counted as it arrives: past the limit the app gets an empty
end of body, and whatever it answers is replaced by the 413, so nothing past the limit
is ever buffered or spooled to disk.
"""

from __future__ import annotations

import json


class BodyLimitMiddleware:

  def __init__(self, app, max_bytes: int, max_json_bytes: int | None = None):
    self.app = app
    self.max_bytes = max_bytes
    self.max_json_bytes = max_bytes if max_json_bytes is None else min(max_json_bytes, max_bytes)

  @staticmethod
  def _message(what: str, limit: int) -> bytes:
    return json.dumps({"error": f"the {what} is over the limit of {limit} bytes"}).encode()

  async def _refuse(self, send, what: str, limit: int) -> None:
    body = self._message(what, limit)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      await self.app(scope, receive, send)
      return
    headers = dict(scope["headers"])
    upload = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
    limit, what = (self.max_bytes, "request") if upload else (self.max_json_bytes, "JSON body")
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
      await self._refuse(send, what, limit)
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
        if received > limit:
          exceeded = True
          return {"type": "http.request", "body": b"", "more_body": False}
      return message

    started = refused = False

    async def guarded_send(message):
      nonlocal started, refused
      if exceeded and not started:  # the app's answer to a cut-off body is replaced
        if not refused:
          refused = True
          await self._refuse(send, what, limit)
        return
      started = True
      await send(message)

    await self.app(scope, counting_receive, guarded_send)
    if exceeded and not started and not refused:
      await self._refuse(send, what, limit)
