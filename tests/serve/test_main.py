"""The README's command, `python -m artclf.serve --workdir=DIR --port=PORT`, as a new user runs it."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install -e .[app])")

from tests.conftest import REPO_ROOT  # noqa: E402
from tests.serve.conftest import jpeg_bytes  # noqa: E402


def free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
  boundary = "artclf-test-boundary"
  body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
          f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
  return body, f"multipart/form-data; boundary={boundary}"


def wait_for_line(process, text: str, timeout: float) -> str:
  deadline = time.monotonic() + timeout
  seen = []
  while time.monotonic() < deadline:
    line = process.stdout.readline()
    if not line and process.poll() is not None:
      break
    seen.append(line)
    if text in line:
      return line
  raise AssertionError(f"no {text!r} from the server; it printed:\n{''.join(seen)}")


def test_serve_command_loads_the_model_then_answers(served_workdir):
  port = free_port()
  process = subprocess.Popen(
      [sys.executable, "-m", "artclf.serve", f"--workdir={served_workdir}", f"--port={port}",
       "--config.max_batch_size=2", "--config.header_timeout_seconds=1"],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    line = wait_for_line(process, "open http://", timeout=180)
    assert "model loaded in" in line and f"127.0.0.1:{port}" in line
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):  # uvicorn binds just after the line
      try:
        health = json.load(urllib.request.urlopen(f"{base}/api/health", timeout=5))
        break
      except OSError:
        time.sleep(0.1)
    assert health["workdir"] == served_workdir.name
    assert health["limits"]["max_batch_size"] == 2  # --config.KEY=VALUE reaches the app
    body, content_type = multipart("a.jpg", jpeg_bytes(1))
    request = urllib.request.Request(f"{base}/api/predict", data=body,
                                     headers={"Content-Type": content_type})
    result, = json.load(urllib.request.urlopen(request, timeout=30))["results"]
    assert result["image"] == "a.jpg" and "culture" in result
    _check_hosts_and_slow_clients(base, port)
  finally:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def _check_hosts_and_slow_clients(base, port):
  """A Host header naming another site (DNS rebinding) is refused; a client that sends
  its headers too slowly is cut off after header_timeout_seconds (1 s here)."""
  rebound = urllib.request.Request(f"{base}/api/health", headers={"Host": "rebound.example:80"})
  with pytest.raises(urllib.error.HTTPError) as refused:
    urllib.request.urlopen(rebound, timeout=5)
  assert refused.value.code == 400 and "rebound.example" in json.load(refused.value)["error"]
  with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
    slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127")
    start = time.monotonic()
    assert slow.recv(100) == b""  # closed by the server, nothing answered
    assert time.monotonic() - start < 5


def test_serve_command_says_when_the_workdir_is_not_a_training_run(tmp_path):
  done = subprocess.run([sys.executable, "-m", "artclf.serve", f"--workdir={tmp_path}"],
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
  assert done.returncode == 2
  assert "config.json not found" in done.stderr
