"""A tiny trained model shared by the server's tests (test_app, test_browser, test_url_fetch)."""

import http.server
import threading
import time

import pytest

from artclf.train import trainer
from configs import tiny
from tests.data import fixtures as data_fixtures


@pytest.fixture(scope="session")
def served_workdir(tmp_path_factory):
  """A workdir as `python -m artclf.train --config=configs/tiny.py` leaves it (seconds)."""
  root = tmp_path_factory.mktemp("served_run")
  config = tiny.get_config()
  config.data.data_dir = str(data_fixtures.build_synthetic(root, num_train=16, num_val=8))
  config.data.max_examples = 0
  config.phase1.epochs = 1
  config.phase2.epochs = 0
  trainer.train_and_evaluate(config, root / "run")
  return root / "run"


def jpeg_bytes(seed: int = 0, size=(96, 72)) -> bytes:
  """A small JPEG that looks like a photo (a gradient with noise)."""
  import io
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(seed)
  width, height = size
  y, x = np.mgrid[0:height, 0:width]
  pixels = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, (53 * seed) % 256)], -1)
  pixels = np.clip(pixels + rng.integers(0, 40, pixels.shape), 0, 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
  return buffer.getvalue()


class _ImageHandler(http.server.BaseHTTPRequestHandler):
  """Routes for the URL-fetching tests; see `image_server`."""

  def log_message(self, *args):  # quiet
    pass

  def _send(self, status, body=b"", content_type="image/jpeg", headers=(), length=True):
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    if length:
      self.send_header("Content-Length", str(len(body)))
    for name, value in headers:
      self.send_header(name, value)
    self.end_headers()
    self.wfile.write(body)

  def do_GET(self):
    routes = {
        "/photo.jpg": lambda: self._send(200, jpeg_bytes(1)),
        "/big.jpg": lambda: self._send(200, b"\xff" * 300_000),
        "/big-undeclared": lambda: self._send(200, b"\xff" * 300_000, length=False),
        "/notes.txt": lambda: self._send(200, b"just text", "text/plain"),
        "/to-photo": lambda: self._send(302, headers=[("Location", "/photo.jpg")]),
        "/to-file": lambda: self._send(302, headers=[("Location", "file:///etc/passwd")]),
        "/slow.jpg": self._trickle,
    }
    routes.get(self.path, lambda: self._send(404, b"not here", "text/plain"))()

  def _trickle(self):
    self.send_response(200)
    self.send_header("Content-Type", "image/jpeg")
    self.send_header("Content-Length", "1000")
    self.end_headers()
    try:
      for _ in range(1000):
        self.wfile.write(b"\xff")
        self.wfile.flush()
        time.sleep(0.1)
    except OSError:  # the client gave up, as it should
      pass


@pytest.fixture(scope="session")
def image_server():
  """Base URL of a local HTTP server: /photo.jpg, /big.jpg (300 KB), /big-undeclared (300 KB,
  no Content-Length), /notes.txt, /to-photo and /to-file (redirects), /slow.jpg (1 byte per
  0.1 s), anything else 404."""
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
  server.daemon_threads = True
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()
