"""Fetching one image URL for the web page, within a size cap and a deadline.

Only http and https. Every address the host resolves to is checked, and so is every
redirect (at most `max_redirects`): loopback, private, link-local and other non-public
addresses are refused unless `allow_private_hosts`, so that a page served on a desk
cannot be used to reach the machine's own services or the local network. (A host that
resolves differently between the check and the connection can still get through; the
server listens on loopback only by default.)

The deadline covers the whole download, not each read, so that a server trickling one
byte a second is cut off too. Failures raise `FetchError`, whose message is for people.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pathlib
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

CHUNK_BYTES = 64 * 1024


class FetchError(ValueError):
  """The URL could not be fetched; `too_large` tells a size refusal from other failures."""

  def __init__(self, message: str, too_large: bool = False):
    super().__init__(message)
    self.too_large = too_large


@dataclasses.dataclass(frozen=True)
class FetchLimits:
  timeout_seconds: float = 10.0
  max_bytes: int = 40 * 1024 * 1024
  max_redirects: int = 3
  allow_private_hosts: bool = False


@dataclasses.dataclass(frozen=True)
class Fetched:
  url: str  # after redirects
  data: bytes
  name: str  # a file name for the image, from the URL's path


def check_url(url: str, allow_private_hosts: bool) -> None:
  """Raises FetchError unless `url` is http(s) with a host that may be contacted."""
  try:
    parts = urllib.parse.urlsplit(url)
    port = parts.port
  except ValueError as error:
    raise FetchError(f"not a valid URL: {error}") from None
  if parts.scheme not in ("http", "https"):
    raise FetchError(f"only http and https URLs can be fetched, not {parts.scheme or 'no scheme'!r}")
  if not parts.hostname:
    raise FetchError("the URL has no host")
  if allow_private_hosts:
    return
  try:
    addresses = {info[4][0] for info in socket.getaddrinfo(
        parts.hostname, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)}
  except (socket.gaierror, UnicodeError) as error:
    raise FetchError(f"cannot resolve host {parts.hostname!r}: {error}") from None
  for address in addresses:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global:
      raise FetchError(f"host {parts.hostname!r} is a local or private address ({ip}); "
                       "such URLs are refused")


def name_from_url(url: str) -> str:
  """The last path segment ('photo.jpg'), or the host when the path has none."""
  parts = urllib.parse.urlsplit(url)
  name = pathlib.PurePosixPath(urllib.parse.unquote(parts.path)).name
  return name or parts.hostname or "image"


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
  """Follows at most `max_redirects` redirects, checking each target like the first URL."""

  def __init__(self, limits: FetchLimits):
    super().__init__()
    self.limits = limits
    self.max_redirections = limits.max_redirects

  def redirect_request(self, req, fp, code, msg, headers, newurl):
    check_url(newurl, self.limits.allow_private_hosts)
    return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, limits: FetchLimits = FetchLimits()) -> Fetched:
  """The body of `url` (at most `limits.max_bytes`, within `limits.timeout_seconds`)."""
  url = url.strip()
  check_url(url, limits.allow_private_hosts)
  deadline = time.monotonic() + limits.timeout_seconds
  opener = urllib.request.build_opener(_CheckedRedirects(limits))
  request = urllib.request.Request(url, headers={"User-Agent": "artclf-serve",
                                                 "Accept": "image/*"})
  try:
    with opener.open(request, timeout=limits.timeout_seconds) as response:
      declared = response.headers.get("Content-Length")
      if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(f"the image is {int(declared)} bytes, over the limit of "
                         f"{limits.max_bytes} bytes", too_large=True)
      data = _read_capped(response, limits.max_bytes, deadline, limits.timeout_seconds)
      final_url = response.geturl()
  except FetchError:
    raise
  except urllib.error.HTTPError as error:
    if 300 <= error.code < 400:  # urllib's own refusal of a redirect to another scheme
      raise FetchError(f"a redirect that cannot be followed: {error.reason}") from None
    raise FetchError(f"the server answered {error.code} {error.reason}") from None
  except urllib.error.URLError as error:
    reason = error.reason
    if isinstance(reason, FetchError):  # raised by a redirect check
      raise reason from None
    raise FetchError(f"cannot fetch the URL: {reason}") from None
  except (TimeoutError, socket.timeout):
    raise FetchError(f"no answer within {limits.timeout_seconds:g} s") from None
  except (OSError, ValueError) as error:  # connection reset, bad status line, ...
    raise FetchError(f"cannot fetch the URL: {error}") from None
  return Fetched(url=final_url, data=data, name=name_from_url(final_url))


def _read_capped(response, max_bytes: int, deadline: float, timeout_seconds: float) -> bytes:
  chunks, size = [], 0
  while True:
    if time.monotonic() > deadline:
      raise FetchError(f"the download took longer than {timeout_seconds:g} s")
    chunk = response.read1(CHUNK_BYTES)  # what has arrived: read() would wait for a full chunk
    if not chunk:
      return b"".join(chunks)
    size += len(chunk)
    if size > max_bytes:
      raise FetchError(f"the image is over the limit of {max_bytes} bytes", too_large=True)
    chunks.append(chunk)
