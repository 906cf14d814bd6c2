"""Serves the web page and JSON API: python -m artclf.serve --workdir=DIR [--port=8000]

  python -m artclf.serve --workdir=checkpoints/cpu_quick
  python -m artclf.serve --workdir=... --config=configs/serve.py --config.max_batch_size=64

Needs the app extra (`pip install -e .[app]`). The model loads and compiles once, before
the server starts listening; then open http://127.0.0.1:8000/. It listens on loopback
only unless --host says otherwise.
"""

import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from artclf import runtime

# configs/ sits beside the artclf package in a checkout (and an editable install).
DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "serve.py"

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (its best checkpoint is used).",
                               required=True)
_PORT = flags.DEFINE_integer("port", 8000, "TCP port to listen on.")
_HOST = flags.DEFINE_string("host", "127.0.0.1",
                            "Address to listen on; 0.0.0.0 opens the page to the network.")
_CONFIG = config_flags.DEFINE_config_file("config", str(DEFAULT_CONFIG),
                                          "The serve settings (limits, thresholds).",
                                          lock_config=True)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    from artclf.serve import app as app_lib
    from artclf.serve import http_server
  except ImportError as error:
    print(f"error: {error.name} is missing: install the app extra, pip install -e .[app]",
          file=sys.stderr)
    return 2
  runtime.configure()
  try:
    server_app = app_lib.load_app(_WORKDIR.value, _CONFIG.value, _HOST.value)
  except (FileNotFoundError, ValueError) as error:  # no run there, or one that cannot be used
    return runtime.report_error(error, status=2)
  startup = server_app.state.startup_seconds
  host = f"[{_HOST.value}]" if ":" in _HOST.value else _HOST.value  # an IPv6 address
  print(f"artclf: model loaded in {startup['load']:.1f} s, compiled in {startup['compile']:.1f} s; "
        f"open http://{host}:{_PORT.value}/", flush=True)
  logging.info("serving %s on %s:%d", _WORKDIR.value, _HOST.value, _PORT.value)
  http_server.run(server_app, _HOST.value, _PORT.value, _CONFIG.value)
  return 0


if __name__ == "__main__":
  app.run(main)
