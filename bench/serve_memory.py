"""The server's memory under a request of many large, small-file pictures (issue 22's case).

  PYTHONPATH=. python bench/serve_memory.py --workdir=DIR [--images 12] [--side 7874] \
      [--code=OTHER_CHECKOUT] [--config.KEY=VALUE ...]

Makes one PNG of side x side pixels (7874: 62 megapixels in about 200 KB, far under
max_pixels), starts `python -m artclf.serve` from --code (this checkout by default, or an
older one to compare) on loopback, and posts --images copies of it in one /api/predict
request. A thread samples the server's resident memory (/proc/PID/status VmRSS) every
20 ms. Prints the answer's status and message, the time it took, and the resident memory
before the request, at its peak during it, and 3 s after it. Any trained run will do (the
decoding dominates); issue 22's figures used the tiny run of tests/serve/conftest.py.

Measured on the project's 2-core machine under a load average of 4-12 (other jobs), tiny
run: 873bfda answered twelve 62-megapixel PNGs (196 KB each) 200 in 34.6 s, resident
memory 686 MB -> peak 3762 MB -> 805 MB after; now 413 in 0.09 s, peak 692 MB. Six of
them (372 megapixels, allowed): 873bfda 200 in 6.9-14.8 s, peak 2323-2339 MB, 689-872 MB
after; now 200 in 3.7 s, peak 1158 MB, 670 MB after.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from bench import serve as serve_bench  # noqa: E402  # pylint: disable=wrong-import-position


def resident_mb(pid: int) -> float:
  for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
    if line.startswith("VmRSS:"):
      return int(line.split()[1]) / 1024
  return 0.0


def big_png(side: int) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (side, side), (120, 90, 60)).save(buffer, "PNG")
  return buffer.getvalue()


def start(code: pathlib.Path, workdir: pathlib.Path, port: int, overrides: list[str]):
  process = subprocess.Popen(
      [sys.executable, "-m", "artclf.serve", f"--workdir={workdir}", f"--port={port}", *overrides],
      cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  for line in process.stdout:
    if "open http://" in line:
      return process
  raise RuntimeError("the server did not start")


def measure(process, port: int, body: bytes) -> dict:
  samples, done = [], threading.Event()

  def sample():
    while not done.is_set():
      samples.append(resident_mb(process.pid))
      time.sleep(0.02)

  time.sleep(2)
  before = resident_mb(process.pid)
  sampler = threading.Thread(target=sample)
  sampler.start()
  request = urllib.request.Request(
      f"http://127.0.0.1:{port}/api/predict", data=body,
      headers={"Content-Type": f"multipart/form-data; boundary={serve_bench.BOUNDARY}"})
  start_time = time.perf_counter()
  try:
    with urllib.request.urlopen(request, timeout=600) as response:
      status, answer = response.status, json.load(response)
  except urllib.error.HTTPError as error:
    status, answer = error.code, json.load(error)
  seconds = time.perf_counter() - start_time
  done.set()
  sampler.join()
  time.sleep(3)
  return {"status": status, "message": str(answer.get("error", "predicted"))[:160],
          "seconds": round(seconds, 2), "rss_before_mb": round(before),
          "rss_peak_mb": round(max(samples + [before])),
          "rss_after_mb": round(resident_mb(process.pid))}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--code", default=str(pathlib.Path(__file__).resolve().parents[1]))
  parser.add_argument("--images", type=int, default=12)
  parser.add_argument("--side", type=int, default=7874)
  parser.add_argument("--port", type=int, default=8765)
  args, overrides = parser.parse_known_args()
  png = big_png(args.side)
  body = serve_bench.multipart([png] * args.images)
  process = start(pathlib.Path(args.code), pathlib.Path(args.workdir), args.port, overrides)
  try:
    result = measure(process, args.port, body)
  finally:
    process.terminate()
    process.wait(timeout=30)
  print(json.dumps({"images": args.images, "megapixels_each": round(args.side ** 2 / 1e6, 1),
                    "file_kb": round(len(png) / 1024), "request_kb": round(len(body) / 1024),
                    **result}))


if __name__ == "__main__":
  main()
