"""An ASGI middleware that puts a strict Content-Security-Policy and friends on every answer.

The page is plain files from /static with no inline script or style, so the policy can
allow scripts, styles and connections from the server itself only: a file name or a
URL that slipped into the page as markup could still run nothing. Images may also be
blob: (the photos the person picked) and data: (the Grad-CAM overlays).
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")

HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      await self.app(scope, receive, send)
      return

    async def send_with_headers(message):
      if message["type"] == "http.response.start":
        names = {name.lower() for name, _ in message.get("headers", [])}
        extra = [(name, value) for name, value in HEADERS if name not in names]
        message = {**message, "headers": list(message.get("headers", [])) + extra}
      await send(message)

    await self.app(scope, receive, send_with_headers)
