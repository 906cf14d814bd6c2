"""The page's "Teach the model" calls (configs/serve.py: teach, teach_dir, teach_holdout_fraction,
teach_epochs, teach_learning_rate).

  GET    /api/corrections            the saved corrections; `pending`: not yet in the served run
  POST   /api/corrections            multipart `file` and `labels` (JSON {task: class or ''})
  DELETE /api/corrections/{id}       forgets one
  GET    /api/corrections/{id}/photo the corrected photo, for the page's list
  POST   /api/teach                  adapts the served run with the pending corrections, in
                                     the background; 409 while one runs
  GET    /api/teach                  its progress, then its outcome (the new run, figures)
  GET    /api/runs                   the runs this server can serve, with their lineage
  POST   /api/runs/serve             JSON {"run": name}: serve that run from now on

The old run stays listed and can be served again; runs are named, never given as paths.
"""

from __future__ import annotations

import io
import json
import pathlib
import re

import ml_collections
from fastapi import FastAPI, File, Form, Response, UploadFile
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from artclf.serve import http_errors, runs, teach_job, teaching, uploads
from artclf.serve.http_errors import InputError

CONFLICT = 409
NOT_FOUND = 404
_ID = re.compile(r"^[0-9a-f]{1,64}$")


class ServeRequest(BaseModel):
  run: str = Field(min_length=1, max_length=200)


def checked_labels(text: str, scheme, name: str) -> dict[str, str]:
  """The `labels` form field, {task: class or ''} for every task of the scheme."""
  try:
    given = json.loads(text)
  except ValueError:
    given = None
  if not isinstance(given, dict):
    raise InputError(http_errors.UNPROCESSABLE, f"{name}: labels must be a JSON object")
  labels = {}
  for task, names in scheme.classes.items():
    value = given.get(task, "")
    if value not in ("",) + names:
      raise InputError(http_errors.UNPROCESSABLE, f"{name}: {task} must be one of "
                                                  f"{', '.join(names)} or empty, not {value!r}")
    labels[task] = value
  return labels


def image_mime(data: bytes) -> str:
  """The MIME type of an encoded image (it was checked to decode when it was saved)."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      return Image.MIME.get(image.format or "", "application/octet-stream")
  except OSError:
    return "application/octet-stream"


def pending_flags(listing: list[dict], served: pathlib.Path) -> list[dict]:
  """Each correction with `pending`: not taught into the served run or its ancestors."""
  chain = {step["run"] for step in runs.lineage_of(served)}
  return [{**item, "pending": not set(item.get("taught_in", ())) & chain} for item in listing]


def add_correction_routes(app: FastAPI, runner, store: teaching.CorrectionStore,
                          settings: ml_collections.ConfigDict) -> None:
  """/api/corrections: saved as they are made, with their photos."""

  @app.get("/api/corrections")
  async def corrections() -> dict:
    listing = await run_in_threadpool(store.listing)
    return {"corrections": pending_flags(listing, runner.model.workdir)}

  @app.post("/api/corrections")
  async def save(file: UploadFile = File(), labels: str = Form(max_length=10_000)) -> dict:
    name = file.filename or "photo"
    if refusal := uploads.too_large(name, file.size or 0, settings.max_file_bytes):
      raise uploads.refuse([refusal], 1)
    upload = uploads.Upload(name, await file.read())
    decoded = await run_in_threadpool(uploads.decode, upload, settings.max_pixels)
    if isinstance(decoded, uploads.Refusal):
      raise uploads.refuse([decoded], 1)
    chosen = checked_labels(labels, runner.model.scheme, name)
    key = await run_in_threadpool(store.save, name, upload.data, chosen)
    return {"id": key, "count": len(await run_in_threadpool(store.listing))}

  @app.delete("/api/corrections/{key}")
  async def forget(key: str) -> dict:
    if not _ID.match(key) or not await run_in_threadpool(store.remove, key):
      raise InputError(NOT_FOUND, f"no correction {key}")
    return {"id": key}

  @app.get("/api/corrections/{key}/photo")
  async def photo(key: str) -> Response:
    try:
      data = await run_in_threadpool(store.photo, key) if _ID.match(key) else None
    except (KeyError, OSError):
      data = None
    if data is None:
      raise InputError(NOT_FOUND, f"no correction {key}")
    return Response(data, media_type=image_mime(data))


def add_teach_routes(app: FastAPI, runner, store: teaching.CorrectionStore,
                     registry: runs.RunRegistry, settings: ml_collections.ConfigDict) -> None:
  """/api/teach, /api/runs and /api/runs/serve."""
  job = teach_job.TeachJob()
  app.state.teach_job = job

  @app.post("/api/teach")
  async def teach() -> dict:
    base, tasks = runner.model.workdir, runner.model.scheme.tasks
    work = lambda progress: teach_job.teach(store, registry, base, tasks,  # noqa: E731
                                            settings, progress)
    if not job.start(work):
      raise InputError(CONFLICT, "the model is being taught already: wait for it to finish")
    return job.snapshot()

  @app.get("/api/teach")
  async def teach_state() -> dict:
    return job.snapshot()

  @app.get("/api/runs")
  async def listing() -> dict:
    return {"runs": await run_in_threadpool(registry.listing, runner.run_name)}

  @app.post("/api/runs/serve")
  async def serve(request: ServeRequest) -> dict:
    try:
      workdir = registry.workdir(request.run)
    except KeyError:
      raise InputError(NOT_FOUND, f"no run {request.run!r} here (see /api/runs)") from None
    await run_in_threadpool(switch, runner, workdir, settings.max_batch_size)
    return runner.health()


def switch(runner, workdir: pathlib.Path, max_batch_size: int) -> None:
  """Loads and compiles the run, then serves it (requests meanwhile get the old one)."""
  from artclf.serve import predict as predict_lib  # pylint: disable=import-outside-toplevel
  try:
    model = predict_lib.load_model(workdir)
  except (FileNotFoundError, ValueError) as error:
    raise InputError(http_errors.UNPROCESSABLE, str(error).splitlines()[0]) from None
  runner.swap(model, max_batch_size, related=runs.lineage_bases(workdir))


def add_routes(app: FastAPI, runner, settings: ml_collections.ConfigDict) -> None:
  """Every teach route, when settings.teach is on."""
  if not settings.teach or runner.model.workdir is None:
    return
  teach_dir = pathlib.Path(settings.teach_dir)
  store = teaching.CorrectionStore(teach_dir)
  add_correction_routes(app, runner, store, settings)
  add_teach_routes(app, runner, store, runs.RunRegistry(runner.model.workdir, teach_dir),
                   settings)
