"""Load on the local server: N requests, C at a time, on loopback, against artclf.predict in-process.

  PYTHONPATH=. python bench/serve.py [--workdir=DIR | --trunk=tiny|resnet50] \
      [--requests 64] [--concurrency 4] [--images-per-request 1]

Starts `python -m artclf.serve` in its own process, as a user would, sends the requests
from threads of this one (one keep-alive connection each) to 127.0.0.1 only, stops the
server, then times `artclf.predict` in this process on the same photos, decoded the same
way, one request's worth per call. Prints requests/s and latency percentiles for both.

Without --workdir, a throwaway model of the chosen trunk is trained for one epoch on a
few synthetic images (seconds for tiny, about a minute for resnet50; its accuracy means
nothing, its compute per image is the real one). The photos are synthetic 800 x 600 JPEGs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from artclf import runtime

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BOUNDARY = "artclf-bench-boundary"


def photos(count: int, size=(800, 600)) -> list[bytes]:
  out = []
  for seed in range(count):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([x * 255 // size[0], y * 255 // size[1], np.full_like(x, 40 * seed % 256)], -1)
    pixels = np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    out.append(buffer.getvalue())
  return out


def throwaway_workdir(trunk: str, root: pathlib.Path) -> pathlib.Path:
  """A model of `trunk` trained one epoch on synthetic images (compute per image as the real one)."""
  from artclf.train import trainer
  from configs import cpu_quick, tiny
  from tests.data import fixtures
  config = tiny.get_config() if trunk == "tiny" else cpu_quick.get_config()
  config.model.trunk = trunk
  config.model.pretrained = False
  config.feature_cache.enabled = "never"
  config.data.data_dir = str(fixtures.build_synthetic(root, num_train=10, num_val=8))
  config.data.max_examples = 0
  config.batch_size = config.eval_batch_size = 8
  config.phase1.epochs, config.phase1.early_stopping_patience, config.phase2.epochs = 1, 0, 0
  trainer.train_and_evaluate(config, root / "run")
  return root / "run"


def multipart(images: list[bytes]) -> bytes:
  parts = [f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{i}.jpg\"\r\n"
           f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n" for i, data in enumerate(images)]
  return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def start_server(workdir: pathlib.Path, port: int, max_batch: int) -> subprocess.Popen:
  process = subprocess.Popen(
      [sys.executable, "-m", "artclf.serve", f"--workdir={workdir}", f"--port={port}",
       f"--config.max_batch_size={max_batch}"],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.monotonic() + 600
  while time.monotonic() < deadline:
    line = process.stdout.readline()
    if "open http://" in line:
      print("server:", line.strip())
      break
    if not line and process.poll() is not None:
      raise RuntimeError("the server stopped before it was ready")
  for _ in range(200):  # uvicorn binds just after that line
    try:
      socket.create_connection(("127.0.0.1", port), timeout=1).close()
      return process
    except OSError:
      time.sleep(0.05)
  raise RuntimeError("the server does not accept connections")


def load_server(port: int, bodies: list[bytes], requests: int, concurrency: int) -> tuple[float, list[float]]:
  """Wall seconds and per-request latencies of `requests` POSTs, `concurrency` at a time."""
  per_worker = [list(range(w, requests, concurrency)) for w in range(concurrency)]

  def worker(indices):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies = []
    for index in indices:
      start = time.perf_counter()
      connection.request("POST", "/api/predict", body=bodies[index % len(bodies)],
                         headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
      response = connection.getresponse()
      payload = response.read()
      if response.status != 200:
        raise RuntimeError(f"the server answered {response.status}: {payload[:200]!r}")
      latencies.append(time.perf_counter() - start)
    connection.close()
    return latencies

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    latencies = [t for part in pool.map(worker, per_worker) for t in part]
  return time.perf_counter() - start, latencies


def in_process(workdir: pathlib.Path, batches: list[list[bytes]], calls: int) -> tuple[float, list[float]]:
  """The same work without the server: decode each photo as the server does, then artclf.predict."""
  from artclf.data import images as image_io
  from artclf.serve import predict
  model = predict.load_model(workdir)
  for batch in batches[:2]:  # compile the batch sizes used, as the server did at start
    predict.predict([image_io.decode_image(data) for data in batch], model=model)
  latencies = []
  start = time.perf_counter()
  for call in range(calls):
    tick = time.perf_counter()
    predict.predict([image_io.decode_image(data) for data in batches[call % len(batches)]], model=model)
    latencies.append(time.perf_counter() - tick)
  return time.perf_counter() - start, latencies


def report(name: str, wall: float, latencies: list[float], per_request: int) -> float:
  p50, p90, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 90, 99])
  rate = len(latencies) / wall
  print(f"{name:34s} {rate:7.2f} requests/s ({rate * per_request:6.2f} images/s)   "
        f"latency p50 {p50:7.1f} ms  p90 {p90:7.1f} ms  p99 {p99:7.1f} ms")
  return rate


def cpu_name() -> str:
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return "unknown CPU"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", help="a trained workdir (default: a throwaway model of --trunk)")
  parser.add_argument("--trunk", default="tiny", choices=["tiny", "resnet50"])
  parser.add_argument("--requests", type=int, default=64)
  parser.add_argument("--concurrency", type=int, default=4)
  parser.add_argument("--images-per-request", type=int, default=1)
  parser.add_argument("--port", type=int, default=8765)
  args = parser.parse_args()
  runtime.configure()
  print(f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
  scratch = tempfile.TemporaryDirectory(prefix="artclf_bench_serve_")
  workdir = pathlib.Path(args.workdir) if args.workdir else throwaway_workdir(args.trunk, pathlib.Path(scratch.name))
  trunk = json.loads((workdir / "config.json").read_text())["model"]["trunk"]
  print(f"model: {trunk} trunk, {workdir}")
  per_request = args.images_per_request
  pool = photos(8)
  batches = [[pool[(i + j) % len(pool)] for j in range(per_request)] for i in range(len(pool))]
  server = start_server(workdir, args.port, max(per_request, 1))
  try:
    load_server(args.port, [multipart(b) for b in batches], 2 * args.concurrency, args.concurrency)
    wall, latencies = load_server(args.port, [multipart(b) for b in batches], args.requests, args.concurrency)
  finally:
    server.terminate()
    server.wait(timeout=30)
  served = report(f"server, {args.concurrency} concurrent", wall, latencies, per_request)
  wall, latencies = in_process(workdir, batches, args.requests)
  direct = report("artclf.predict in-process, serial", wall, latencies, per_request)
  print(f"server throughput / in-process: {served / direct:.2f}x")
  scratch.cleanup()


if __name__ == "__main__":
  main()
