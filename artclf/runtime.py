"""Process-wide settings for artclf's entry points: XLA CPU flags and quiet library logs.

Call `configure()` at the top of every entry point (train, evaluate, predict, benches),
before the first JAX computation; importing artclf itself changes nothing.
`configure_xla_cpu()` appends the project's flags to the user's `XLA_FLAGS`; a flag the
user already set keeps the user's value. XLA aborts the process on a flag it does not
know, and flags come and go between jaxlib releases, so each flag is first tried once in
a child process with the installed jaxlib (the answer is cached per jaxlib version), and
one that this jaxlib does not know is left out with a warning. Once JAX has initialised
its backends the flags can no longer take effect, so it then only warns.

The flags were chosen by measurement (`bench/xla_flag_sweep.py`, results in
`bench/README.md`), on the 2-core AVX2 AMD EPYC CPU of the project's machine, jax 0.10.2.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import pathlib
import subprocess
import sys
import warnings

# Flag name (without the leading dashes) -> value. See bench/README.md for the measurements.
PROJECT_XLA_CPU_FLAGS: dict[str, str] = {
    # No YNNPACK fusions: convolutions and dots go to XLA's Eigen kernels. YNNPACK's
    # convolution ran the kernel/input gradients of ResNet50's convolutions 2-5x slower
    # than Eigen; inference is unchanged within noise. Nor does YNNPACK make bfloat16 pay
    # (issue 26, 2-core Intel Xeon with AVX512-BF16 and AMX, jaxlib 0.10.2, CPU time of one
    # thread, ResNet50 predict at batch 8): float32 656 ms with Eigen, 695 ms with YNNPACK
    # (default fusions), 676 ms with YNNPACK dots only; bfloat16 684, 786 and 743 ms.
    # YNNPACK's bf16 runs large matrix products 2.3x faster than Eigen's f32 (98 against
    # 225 ms for 6272x1024 @ 1024x2048), but ResNet50's 3x3 convolutions gain nothing in
    # bf16 on any path (Eigen 53 vs 55 ms, YNNPACK 67 vs 65 ms for a 14x14x256 layer), and
    # the conversions eat the rest. XLA:CPU here does not use AMX or oneDNN (neither
    # --xla_cpu_experimental_onednn_* flag puts a oneDNN call in the compiled HLO), which
    # is what PyTorch's bf16 autocast uses: 313 ms against its own 864 ms in float32.
    "xla_cpu_experimental_ynn_fusion_type": "",
}


def _flag_names(xla_flags: str) -> set[str]:
  """Names of the flags in an XLA_FLAGS string ('--name=value' or '--name')."""
  return {token.lstrip("-").split("=", 1)[0] for token in xla_flags.split() if token.startswith("-")}


def _jax_backend_started() -> bool:
  if "jax" not in sys.modules:
    return False
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  return xla_bridge.backends_are_initialized()


def configure_xla_cpu(flags: dict[str, str] | None = None, warn: bool = True) -> list[str]:
  """Adds the project's XLA CPU flags to XLA_FLAGS; returns the flags it added.

  `flags` defaults to `PROJECT_XLA_CPU_FLAGS`. User-set flags win. If JAX's backend is
  already running, nothing changes and a warning says so.
  """
  flags = PROJECT_XLA_CPU_FLAGS if flags is None else flags
  existing = os.environ.get("XLA_FLAGS", "")
  user_flag_names = _flag_names(existing)
  to_add = [f"--{name}={value}" for name, value in flags.items() if name not in user_flag_names]
  if not to_add:
    return []
  if _jax_backend_started():
    if not warn:
      return []
    warnings.warn(
        "artclf.runtime.configure_xla_cpu() was called after JAX initialised its backend; "
        f"XLA flags {to_add} not applied. Call it before the first JAX computation.",
        RuntimeWarning, stacklevel=2)
    return []
  unknown = [flag for flag in to_add if not known_to_jaxlib(flag)]
  if unknown:
    warnings.warn(f"the installed jaxlib does not know the XLA flags {unknown}; running without",
                  RuntimeWarning, stacklevel=2)
    to_add = [flag for flag in to_add if flag not in unknown]
  if to_add:
    os.environ["XLA_FLAGS"] = " ".join(([existing] if existing.strip() else []) + to_add)
  return to_add


def _probe_cache_path() -> pathlib.Path:
  cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  return pathlib.Path(cache_home) / "artclf" / "xla_flags.json"


def known_to_jaxlib(flag: str) -> bool:
  """Whether the installed jaxlib starts with `flag` in XLA_FLAGS (tried in a child process)."""
  try:
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    version = metadata.version("jaxlib")
  except Exception:  # pylint: disable=broad-except  # no jaxlib metadata: just try
    version = "unknown"
  key = f"{version} {flag}"
  path = _probe_cache_path()
  try:
    cache = json.loads(path.read_text())
  except (OSError, ValueError):
    cache = {}
  if key not in cache:
    env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                            capture_output=True, timeout=120, check=False)
    cache[key] = result.returncode == 0
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(json.dumps(cache, indent=1))
    except OSError:
      pass  # a read-only home: probe again next time
  return bool(cache[key])


_QUIET_PATHS = tuple(os.sep + name + os.sep for name in ("orbax", "grain", "jax",
                                                        "tensorflow_datasets"))


_DISK_ERRNOS = (28, 122, 30)  # ENOSPC, EDQUOT, EROFS


def _is_disk_error(record: std_logging.LogRecord) -> bool:
  """Whether the record reports a full or read-only disk (in its exception chain or text)."""
  error = record.exc_info[1] if record.exc_info else None
  while error is not None:
    if (isinstance(error, OSError) and error.errno in _DISK_ERRNOS) or (
        "No space left on device" in str(error)):
      return True
    error = error.__cause__ or error.__context__
  return "No space left on device" in record.getMessage()


class _LibraryInfoFilter(std_logging.Filter):
  """Drops INFO records logged from inside orbax, grain, jax and TFDS (warnings pass), so
  the lines a user reads in a training log are artclf's own; and their errors about a
  full or read-only disk, with their tracebacks from every save thread: the entry point
  reports that in one line (what was full, where, what was kept)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if not any(p in record.pathname for p in _QUIET_PATHS):
      return True
    return record.levelno >= std_logging.WARNING and not _is_disk_error(record)


def _is_closed_loop_error(error_type, error, tb) -> bool:
  """A 'RuntimeError: Event loop is closed' of a callback into a finished asyncio loop."""
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return (error_type is RuntimeError and str(error) == "Event loop is closed" and
          tb is not None and tb.tb_frame.f_code.co_name == "_check_closed")


def _quiet_closed_loop_errors(excepthook, unraisablehook):
  """sys.excepthook and sys.unraisablehook without the tracebacks tensorstore prints when
  a failed orbax save (a full disk) has closed the event loop its callbacks complete
  futures on; the failure itself is reported by the entry point in one line."""
  def quiet_excepthook(error_type, error, tb):
    if not _is_closed_loop_error(error_type, error, tb):
      excepthook(error_type, error, tb)

  def quiet_unraisablehook(unraisable):
    if not _is_closed_loop_error(unraisable.exc_type, unraisable.exc_value,
                                 unraisable.exc_traceback):
      unraisablehook(unraisable)
  quiet_excepthook.artclf_quiet = True
  return quiet_excepthook, quiet_unraisablehook


def configure() -> None:
  """XLA CPU flags (see configure_xla_cpu), the log filter and the quiet hook for closed
  event loops; call once, first thing in main()."""
  configure_xla_cpu()
  if not getattr(sys.excepthook, "artclf_quiet", False):
    sys.excepthook, sys.unraisablehook = _quiet_closed_loop_errors(sys.excepthook,
                                                                   sys.unraisablehook)
  from absl import logging  # pylint: disable=import-outside-toplevel
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _LibraryInfoFilter) for f in handler.filters):
    handler.addFilter(_LibraryInfoFilter())


def report_error(error, status: int = 1) -> int:
  """Logs and prints `error`'s first line as 'error: ...' on stderr; returns `status`.

  The expected failures of the command-line tools (bad input, a refused resume, missing
  weights) end in this one line; anything else is a bug and keeps its traceback. An error
  whose class sets `exit_at_once` (a damaged checkpoint: orbax leaves reads of it in
  flight, which print tracebacks when the interpreter shuts down) ends the process here.
  """
  import sys  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  text = str(error).strip()
  message = text.splitlines()[0] if text else repr(error)
  logging.error("%s", message)
  print(f"error: {message}", file=sys.stderr)
  if getattr(error, "exit_at_once", False):
    sys.stdout.flush()
    sys.stderr.flush()
    logging.flush()
    os._exit(status)  # pylint: disable=protected-access
  return status
