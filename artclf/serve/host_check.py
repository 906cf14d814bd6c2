"""An ASGI middleware that answers only requests naming this server in their Host header.

A page of another site can rebind its DNS name to 127.0.0.1 and then call the API as if
it were the same site (DNS rebinding); its requests still carry that site's name in
`Host`. So only the loopback names, the address the server listens on and the configured
`allowed_hosts` are answered; anything else gets 400 with a JSON error. '*' allows all.
"""

from __future__ import annotations

import json

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
  """'Example.org:8000' -> 'example.org'; '[::1]:8000' -> '::1'."""
  header = header.strip().lower()
  if header.startswith("["):
    return header[1:header.find("]")] if "]" in header else header
  return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


def allowed_names(configured: str, listen_host: str | None = None) -> set[str]:
  """The loopback names, the listening address and the comma-separated configured names."""
  names = {host_name(name) for name in configured.split(",") if name.strip()}
  if listen_host:
    names.add(host_name(listen_host) if not listen_host.count(":") > 1 else listen_host.lower())
  return names | set(LOOPBACK_NAMES)


class HostCheckMiddleware:

  def __init__(self, app, allowed: set[str]):
    self.app = app
    self.allowed = allowed

  async def __call__(self, scope, receive, send):
    if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
      raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
      if host_name(raw) not in self.allowed:
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        body = json.dumps({"error": f"the Host header {shown!r} does not name this server; "
                                    "add the name to allowed_hosts (--config.allowed_hosts=...)"
                           }).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    await self.app(scope, receive, send)
