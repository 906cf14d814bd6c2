"""A polite HTTP client for museum APIs: rate limit, bounded concurrency, retries, timeouts.

Standard library only (`urllib.request`). One `HttpClient` per API host:

* a token bucket keeps the request rate at or under the museum's published limit (the
  Met: 80 requests/s; AIC: 60 requests/min for anonymous users);
* a semaphore bounds the requests in flight, whatever the number of worker threads;
* 429 and 5xx answers, connection errors, timeouts and truncated bodies are retried with
  exponential backoff (with jitter); a `Retry-After` header on 429/503 sets the wait;
* other 4xx answers (404, 403, ...) fail at once with `HttpError`;
* bodies are capped at `max_bytes` and checked against `Content-Length`.
"""

import email.utils
import http.client
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpError(Exception):
  """A request that failed for good (a non-retryable status, or retries exhausted)."""

  def __init__(self, url: str, status: int | None, message: str):
    super().__init__(f"{message} ({url})")
    self.url = url
    self.status = status  # None for network errors and timeouts.


class TokenBucket:
  """Thread-safe token bucket: `rate` tokens per second, at most `burst` saved up."""

  def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic,
               sleep=time.sleep):
    if rate <= 0:
      raise ValueError(f"rate must be positive, got {rate}")
    self.rate = float(rate)
    self.burst = float(burst if burst is not None else max(1.0, rate))
    self._tokens = self.burst
    self._clock = clock
    self._sleep = sleep
    self._last = clock()
    self._lock = threading.Lock()

  def acquire(self) -> None:
    """Blocks until a token is available and takes it."""
    while True:
      with self._lock:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
          self._tokens -= 1
          return
        wait = (1 - self._tokens) / self.rate
      self._sleep(wait)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
  """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
  if not value:
    return None
  value = value.strip()
  try:
    return max(0.0, float(value))
  except ValueError:
    pass
  try:
    when = email.utils.parsedate_to_datetime(value)
  except (TypeError, ValueError):
    return None
  now = time.time() if now is None else now
  return max(0.0, when.timestamp() - now)


class HttpClient:
  """GETs with a rate limit, bounded concurrency, retries and timeouts (see module doc)."""

  def __init__(self, *, rate: float, max_concurrency: int = 4, timeout: float = 30.0,
               retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
               max_retry_after: float = 300.0, max_bytes: int = 64 << 20,
               user_agent: str = "artclf-museums/0.1", headers: dict | None = None,
               sleep=time.sleep):
    self.bucket = TokenBucket(rate, sleep=sleep)
    self._slots = threading.BoundedSemaphore(max_concurrency)
    self.timeout = timeout
    self.retries = retries
    self.backoff = backoff
    self.max_backoff = max_backoff
    self.max_retry_after = max_retry_after
    self.max_bytes = max_bytes
    self.headers = {"User-Agent": user_agent, **(headers or {})}
    self._sleep = sleep
    self._lock = threading.Lock()
    self.requests = 0   # Requests sent, retries included (for tests and the summary).
    self.retried = 0

  def _once(self, url: str) -> tuple[bytes, object]:
    self.bucket.acquire()
    with self._lock:
      self.requests += 1
    request = urllib.request.Request(url, headers=self.headers)
    with self._slots, urllib.request.urlopen(request, timeout=self.timeout) as response:
      length = response.headers.get("Content-Length")
      if length is not None and int(length) > self.max_bytes:
        raise HttpError(url, response.status, f"body of {length} bytes is over the cap")
      body = response.read(self.max_bytes + 1)
      if len(body) > self.max_bytes:
        raise HttpError(url, response.status, "body over the size cap")
      if length is not None and len(body) != int(length):
        raise http.client.IncompleteRead(body, int(length) - len(body))
      return body, response.headers

  def _backoff(self, attempt: int) -> float:
    delay = min(self.max_backoff, self.backoff * 2 ** attempt)
    return delay * (0.5 + random.random() / 2)  # Jitter: spread out retrying workers.

  def get(self, url: str, params: dict | None = None) -> bytes:
    """The body of a GET; raises `HttpError` when it cannot be had."""
    return self.get_with_headers(url, params)[0]

  def get_with_headers(self, url: str, params: dict | None = None) -> tuple[bytes, object]:
    """(body, response headers) of a GET; headers matter where an API signals in them."""
    if params:
      url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    for attempt in range(self.retries + 1):
      last = attempt == self.retries
      try:
        return self._once(url)
      except urllib.error.HTTPError as e:
        if e.code not in RETRY_STATUSES or last:
          raise HttpError(url, e.code, f"HTTP {e.code}") from None
        wait = None
        if e.code in (429, 503):
          wait = parse_retry_after(e.headers.get("Retry-After"))
        if wait is None:
          wait = self._backoff(attempt)
        elif wait > self.max_retry_after:
          raise HttpError(url, e.code, f"HTTP {e.code}, Retry-After {wait:.0f}s too long")
      except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
              http.client.HTTPException, OSError) as e:
        if last:
          raise HttpError(url, None, f"network error: {e}") from None
        wait = self._backoff(attempt)
      with self._lock:
        self.retried += 1
      self._sleep(wait)
    raise AssertionError("unreachable")

  def get_json(self, url: str, params: dict | None = None):
    return self.get_json_with_headers(url, params)[0]

  def get_json_with_headers(self, url: str, params: dict | None = None):
    body, headers = self.get_with_headers(url, params)
    try:
      return json.loads(body), headers
    except ValueError:
      raise HttpError(url, 200, "response is not JSON") from None

  def pause(self, seconds: float) -> None:
    """Waits as this client waits between retries (tests pass a recording `sleep`)."""
    with self._lock:
      self.retried += 1
    self._sleep(seconds)
