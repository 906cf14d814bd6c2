"""Fetching an image URL: schemes, private hosts, redirects, size cap and deadline."""

import time
import urllib.request

import pytest

from artclf.serve import url_fetch
from tests.serve.conftest import jpeg_bytes

LOCAL = url_fetch.FetchLimits(timeout_seconds=1.0, max_bytes=200_000, allow_private_hosts=True)


def test_fetches_an_image_and_names_it_from_the_path(image_server):
  fetched = url_fetch.fetch(f"{image_server}/photo.jpg", LOCAL)
  assert fetched.data == jpeg_bytes(1)
  assert fetched.name == "photo.jpg"


def test_follows_a_redirect_and_names_the_final_file(image_server):
  fetched = url_fetch.fetch(f"{image_server}/to-photo", LOCAL)
  assert fetched.name == "photo.jpg" and fetched.url.endswith("/photo.jpg")


@pytest.mark.parametrize("url, message", [
    ("file:///etc/passwd", "only http and https"),
    ("ftp://example.org/a.jpg", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("photo.jpg", "only http and https"),
    ("http://", "no host"),
    ("http://[::1", "not a valid URL"),
])
def test_refuses_what_is_not_an_http_url(url, message):
  with pytest.raises(url_fetch.FetchError, match=message):
    url_fetch.fetch(url, LOCAL)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1",
                                  "169.254.169.254", "[::1]", "0.0.0.0"])
def test_refuses_local_and_private_hosts_by_default(host):
  with pytest.raises(url_fetch.FetchError, match="local or private"):
    url_fetch.check_url(f"http://{host}/photo.jpg", allow_private_hosts=False)


def test_a_redirect_is_checked_like_the_first_url(image_server):
  with pytest.raises(url_fetch.FetchError, match="redirect that cannot be followed"):
    url_fetch.fetch(f"{image_server}/to-file", LOCAL)
  # A public page redirecting to a private address is refused at the redirect.
  public = url_fetch.FetchLimits(allow_private_hosts=False)
  handler = url_fetch._CheckedRedirects(public)  # pylint: disable=protected-access
  request = urllib.request.Request("http://example.org/a.jpg")
  with pytest.raises(url_fetch.FetchError, match="local or private"):
    handler.redirect_request(request, None, 302, "Found", {}, "http://169.254.169.254/latest")


def test_refuses_bodies_over_the_cap_declared_or_not(image_server):
  for path in ("/big.jpg", "/big-undeclared"):
    with pytest.raises(url_fetch.FetchError, match="over the limit of 200000 bytes") as caught:
      url_fetch.fetch(image_server + path, LOCAL)
    assert caught.value.too_large


def test_the_deadline_covers_the_whole_download(image_server):
  start = time.monotonic()
  with pytest.raises(url_fetch.FetchError, match="longer than 1 s"):
    url_fetch.fetch(f"{image_server}/slow.jpg", LOCAL)  # 1 byte per 0.1 s: each read is quick
  assert time.monotonic() - start < 2.5


def test_http_errors_are_reported_with_the_status(image_server):
  with pytest.raises(url_fetch.FetchError, match="404"):
    url_fetch.fetch(f"{image_server}/missing.jpg", LOCAL)
