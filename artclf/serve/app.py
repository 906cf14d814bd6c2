"""The web page and JSON API of `python -m artclf.serve`: a FastAPI app around one trained model.

  GET  /               the page (static files in artclf/serve/static)
  GET  /api/health     the model: run, lineage, workdir, config hash, trunk, classes; limits
  POST /api/predict    multipart, one or more files as `files`: predict's fields per image,
                       and ?neighbours=k nearest training photos (`neighbour_images`)
  GET  /api/neighbours/{row}  a training photo's thumbnail
  POST /api/explain    multipart, one file as `file`: Grad-CAM overlays per task
  POST /api/fetch      JSON {"url": ...}: the image at the URL (size and time limits)
  POST /api/export     JSON {"rows": [...]}: the checked batch as CSV (see `export`)
  /api/corrections, /api/teach, /api/runs: "Teach the model" (see `teach_routes`)

Bad input is answered 400, 413 or 422 with {"error": "..."} naming the file (see
`http_errors`, `uploads`). Model work runs in worker threads, one call at a time
(`model_runner`), so the event loop keeps taking requests meanwhile.
"""

from __future__ import annotations

import io
import logging
import pathlib
import time
import urllib.parse
from typing import Any

import ml_collections
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from artclf.serve import (export, http_errors, neighbour_images, teach_routes, uploads,
                          url_fetch)
from artclf.serve.body_limit import BodyLimitMiddleware
from artclf.serve.http_errors import InputError
from artclf.serve.model_runner import ModelRunner
from artclf.serve.security_headers import SecurityHeadersMiddleware

STATIC_DIR = pathlib.Path(__file__).parent / "static"


class FetchRequest(BaseModel):
  url: str = Field(min_length=1, max_length=4096)


class TaskPrediction(BaseModel, extra="allow"):
  label: str
  probability: float


class ExportRow(BaseModel):
  image: str = Field(min_length=1, max_length=1024)
  labels: dict[str, str]
  predicted: dict[str, TaskPrediction]
  familiarity: float | None = None
  unfamiliar: bool | None = None
  source_url: str = Field(default="", max_length=4096)


class ExportRequest(BaseModel):
  rows: list[ExportRow]


def limits(settings: ml_collections.ConfigDict) -> dict:
  """The limits the page checks before uploading (the server checks them again)."""
  return {key: settings[key] for key in (
      "max_file_bytes", "max_request_bytes", "max_pixels", "max_batch_size", "max_export_rows",
      "url_timeout_seconds", "url_max_bytes", "low_confidence_threshold", "neighbours",
      "max_neighbours", "teach")}


async def read_uploads(files: list[UploadFile], max_file_bytes: int) -> list[uploads.Upload]:
  """The files' bytes; the sizes are checked first, so no oversize file is read into memory."""
  names = [file.filename or f"file {i + 1}" for i, file in enumerate(files)]
  refusals = [r for name, file in zip(names, files)
              if (r := uploads.too_large(name, file.size or 0, max_file_bytes))]
  if refusals:
    raise uploads.refuse(refusals, len(files))
  return [uploads.Upload(name, await file.read()) for name, file in zip(names, files)]


def fetch_image(url: str, settings: ml_collections.ConfigDict) -> tuple[url_fetch.Fetched, str]:
  """The fetched file and its MIME type; refuses what is not a readable image."""
  fetch_limits = url_fetch.FetchLimits(
      timeout_seconds=settings.url_timeout_seconds, max_bytes=settings.url_max_bytes,
      max_redirects=settings.url_max_redirects,
      allow_private_hosts=settings.url_allow_private_hosts)
  try:
    fetched = url_fetch.fetch(url, fetch_limits)
  except url_fetch.FetchError as error:
    status = http_errors.PAYLOAD_TOO_LARGE if error.too_large else http_errors.UNPROCESSABLE
    raise InputError(status, f"{url}: {error}") from None
  outcome = uploads.decode(uploads.Upload(fetched.name, fetched.data), settings.max_pixels)
  if isinstance(outcome, uploads.Refusal):
    raise InputError(outcome.status, f"{url}: {outcome.reason}")
  with Image.open(io.BytesIO(fetched.data)) as image:
    mime = Image.MIME.get(image.format or "", "application/octet-stream")
  return fetched, mime


def check_export(rows: list[ExportRow], max_rows: int, scheme) -> list[dict]:
  """The rows, each label checked against the served run's scheme."""
  if len(rows) > max_rows:
    raise InputError(http_errors.PAYLOAD_TOO_LARGE,
                     f"{len(rows)} rows to export; the limit is {max_rows}")
  checked = []
  for row in rows:
    for task, names in scheme.classes.items():
      chosen = row.labels.get(task)
      if chosen is None or chosen not in ("",) + names:
        raise InputError(http_errors.UNPROCESSABLE,
                         f"{row.image}: {task} must be one of {', '.join(names)} "
                         f"or empty, not {chosen!r}")
      if task not in row.predicted:
        raise InputError(http_errors.UNPROCESSABLE, f"{row.image}: no predicted {task}")
    checked.append({"image": row.image, "labels": row.labels, "source_url": row.source_url,
                    "predicted": {**{task: row.predicted[task].model_dump()
                                     for task in scheme.tasks},
                                  "familiarity": row.familiarity, "unfamiliar": row.unfamiliar}})
  return checked


def add_model_routes(app: FastAPI, runner: ModelRunner, settings: ml_collections.ConfigDict) -> None:
  """/api/health, /api/predict and /api/explain: the API for collection systems."""

  @app.get("/api/health")
  async def health() -> dict[str, Any]:
    return {**runner.health(), "limits": limits(settings)}

  @app.post("/api/predict")
  async def predict(files: list[UploadFile] = File(default=[]),
                    neighbours: int | None = None) -> dict[str, Any]:
    """Labels and calibrated probabilities per image: every field `artclf.predict` returns;
    ?neighbours=k adds the k nearest training photos (default: the serve config's)."""
    count = neighbour_images.count_of(neighbours, settings.neighbours, settings.max_neighbours)
    uploads.check_count(len(files), settings.max_batch_size)
    batch = await read_uploads(files, settings.max_file_bytes)
    await run_in_threadpool(uploads.decode_all, batch, settings.max_pixels)  # refuse bad files
    results = await run_in_threadpool(runner.predict, [upload.data for upload in batch], count)
    return {"results": [{"image": upload.name, **result}
                        for upload, result in zip(batch, results)]}

  @app.post("/api/explain")
  async def explain(file: UploadFile = File()) -> dict[str, Any]:
    """Grad-CAM overlays (PNG data URLs) per task: where each head looked."""
    batch = await read_uploads([file], settings.max_file_bytes)
    picture, = await run_in_threadpool(uploads.decode_all, batch, settings.max_pixels)
    overlays = await run_in_threadpool(runner.explain, picture, batch[0].data)
    return {"image": batch[0].name, "overlays": overlays}


def add_page_routes(app: FastAPI, runner: ModelRunner, settings: ml_collections.ConfigDict) -> None:
  """The page, its static files, and the two calls only it needs: /api/fetch and /api/export."""
  app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

  @app.get("/", include_in_schema=False)
  async def page():
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

  @app.post("/api/fetch")
  async def fetch(request: FetchRequest) -> Response:
    """The image at a URL, checked, for the page to predict like an uploaded file."""
    fetched, mime = await run_in_threadpool(fetch_image, request.url, settings)
    return Response(fetched.data, media_type=mime, headers={
        "X-Image-Name": urllib.parse.quote(fetched.name),
        "X-Source-Url": urllib.parse.quote(fetched.url, safe=":/?&=#%")})

  @app.post("/api/export")
  async def export_csv(request: ExportRequest) -> Response:
    """The batch as CSV in the labels.csv format, with the predictions beside the labels."""
    scheme = runner.model.scheme
    rows = check_export(request.rows, settings.max_export_rows, scheme)
    return Response(export.to_csv(rows, scheme.tasks), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="artclf_batch.csv"'})


def create_app(model, settings: ml_collections.ConfigDict) -> FastAPI:
  """The app for one `TrainedModel` and the serve settings (configs/serve.py)."""
  runner = ModelRunner(model, settings.low_confidence_threshold, settings.flip_tta,
                       settings.overlay_size)
  # No /docs: Swagger UI loads its scripts from a CDN, which the page's policy (and an
  # offline desk) refuses. The schema is at /api/openapi.json.
  app = FastAPI(title="artclf", summary="What an ancient artwork is, from a photo: the "
                "labels of a trained run (culture, medium and period by default)",
                docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
  app.state.runner = runner
  app.state.settings = settings
  http_errors.install(app)
  app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
  app.add_middleware(SecurityHeadersMiddleware)
  add_model_routes(app, runner, settings)
  neighbour_images.add_routes(app, runner)
  add_page_routes(app, runner, settings)
  teach_routes.add_routes(app, runner, settings)
  return app


def load_app(workdir: str | pathlib.Path, settings: ml_collections.ConfigDict) -> FastAPI:
  """Loads the workdir's model, compiles it for every batch size a request can use, builds the app."""
  from artclf.serve import predict as predict_lib  # Deferred: pulls in JAX.
  start = time.perf_counter()
  model = predict_lib.load_model(workdir)
  loaded = time.perf_counter() - start
  app = create_app(model, settings)
  compiled = app.state.runner.warm_up(settings.max_batch_size)
  logging.info("model of %s loaded in %.1f s, compiled and warmed up in %.1f s",
               model.workdir, loaded, compiled)
  app.state.startup_seconds = {"load": loaded, "compile": compiled}
  return app
