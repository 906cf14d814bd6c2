"""The web page and JSON API of `python -m artclf.serve`: a FastAPI app around one trained model.

  GET  /               the page (static files in artclf/serve/static)
  GET  /api/health     the model: run (workdir name), lineage, config hash, trunk, classes;
                       and the limits
  POST /api/predict    multipart, one or more files as `files`: predict's fields per image,
                       and ?neighbours=k nearest training photos (`neighbour_images`)
  GET  /api/neighbours/{row}  a training photo's thumbnail
  POST /api/explain    multipart, one file as `file` (more are refused): Grad-CAM overlays
  POST /api/fetch      JSON {"url": ...}: the image at the URL (size and time limits)
  POST /api/export     JSON {"rows": [...]}: the checked batch as CSV (see `export`)
  /api/corrections, /api/teach, /api/runs: "Teach the model" (see `teach_routes`)

Bad input is answered 400, 413 or 422 with {"error": "..."} naming the file (see
`http_errors`, `uploads`). Model work runs in worker threads, one call at a time
(`model_runner`), so the event loop keeps taking requests meanwhile. Requests whose Host
header does not name this server are refused (`host_check`); bodies are bounded in
bytes (`body_limit`) and uploads in decoded pixels (`uploads`).
"""

from __future__ import annotations

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

from artclf.data import images as image_io
from artclf.serve import (export, http_errors, memory, neighbour_images, teach_routes,
                          uploads, url_fetch)
from artclf.serve.body_limit import BodyLimitMiddleware
from artclf.serve.host_check import HostCheckMiddleware, allowed_names
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
      "max_file_bytes", "max_request_bytes", "max_pixels", "max_request_pixels",
      "max_batch_size", "max_export_rows", "max_json_bytes", "url_timeout_seconds",
      "url_max_bytes", "low_confidence_threshold", "neighbours", "max_neighbours", "teach")}


def shortened(text: str, length: int = 60) -> str:
  """`text` as repr, cut to about `length` characters: client values echoed in messages."""
  if len(text) <= length:
    return repr(text)
  return repr(text[:length]) + f" (+{len(text) - length} characters)"


async def read_uploads(files: list[UploadFile], max_file_bytes: int) -> list[uploads.Upload]:
  """The files' bytes; the sizes are checked first, so no oversize file is read into memory."""
  names = [file.filename or f"file {i + 1}" for i, file in enumerate(files)]
  refusals = [r for name, file in zip(names, files)
              if (r := uploads.too_large(name, file.size or 0, max_file_bytes))]
  if refusals:
    raise uploads.refuse(refusals, len(files))
  return [uploads.Upload(name, await file.read()) for name, file in zip(names, files)]


def fetch_image(url: str, settings: ml_collections.ConfigDict,
                budget: uploads.PixelBudget) -> tuple[url_fetch.Fetched, str]:
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
  upload = uploads.Upload(fetched.name, fetched.data)
  pixels = uploads.declared_pixels(upload, settings.max_pixels)
  if not isinstance(pixels, uploads.Refusal):
    with budget.reserve(pixels):
      pixels = uploads.decode(upload, settings.max_pixels, draft_size=settings.overlay_size)
    memory.release()
  if isinstance(pixels, uploads.Refusal):
    raise InputError(pixels.status, f"{url}: {pixels.reason}")
  mime = Image.MIME.get(image_io.open_image(fetched.data).format or "", "application/octet-stream")
  return fetched, mime


def explain_inputs(upload: uploads.Upload, pixels: int, model, overlay_size: int,
                   budget: uploads.PixelBudget):
  """(the picture at about the overlay's size, the model's view) of one file, in budget."""
  with budget.reserve(pixels):
    try:
      view = model.view(upload.data)
    except image_io.ImageDecodeError as error:
      raise InputError(http_errors.UNPROCESSABLE, f"{upload.name}: {error}") from None
    picture = uploads.decode(upload, max(pixels, 1), draft_size=overlay_size)
    if not isinstance(picture, uploads.Refusal):
      picture.thumbnail((overlay_size, overlay_size), Image.Resampling.LANCZOS)
  memory.release()
  if isinstance(picture, uploads.Refusal):
    raise InputError(picture.status, f"{upload.name}: {picture.reason}")
  return picture, view


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
                         f"{shortened(row.image)}: {task} must be one of {', '.join(names)} "
                         f"or empty, not {'nothing' if chosen is None else shortened(chosen)}")
      if task not in row.predicted:
        raise InputError(http_errors.UNPROCESSABLE, f"{shortened(row.image)}: no predicted {task}")
    checked.append({"image": row.image, "labels": row.labels, "source_url": row.source_url,
                    "predicted": {**{task: row.predicted[task].model_dump()
                                     for task in scheme.tasks},
                                  "familiarity": row.familiarity, "unfamiliar": row.unfamiliar}})
  return checked


def add_model_routes(app: FastAPI, runner: ModelRunner, settings: ml_collections.ConfigDict,
                     budget: uploads.PixelBudget) -> None:
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
    pixels = await run_in_threadpool(uploads.check_pixels, batch, settings.max_pixels,
                                     settings.max_request_pixels)
    views = await run_in_threadpool(uploads.to_views, batch, pixels, runner.model.view, budget)
    results = await run_in_threadpool(runner.predict_views, views, count)
    return {"results": [{"image": upload.name, **result}
                        for upload, result in zip(batch, results)]}

  @app.post("/api/explain")
  async def explain(file: list[UploadFile] = File()) -> dict[str, Any]:
    """Grad-CAM overlays (PNG data URLs) per task of one file: where each head looked."""
    if len(file) != 1:
      names = ", ".join(shortened(f.filename or "?", 40) for f in file[:4])
      raise InputError(http_errors.BAD_REQUEST, f"explain takes one file, not {len(file)} "
                       f"({names}): send each file in its own request")
    batch = await read_uploads(file, settings.max_file_bytes)
    pixels = await run_in_threadpool(uploads.check_pixels, batch, settings.max_pixels,
                                     settings.max_request_pixels)
    picture, view = await run_in_threadpool(explain_inputs, batch[0], pixels[0], runner.model,
                                            settings.overlay_size, budget)
    overlays = await run_in_threadpool(runner.explain, picture, view)
    return {"image": batch[0].name, "overlays": overlays}


def add_page_routes(app: FastAPI, runner: ModelRunner, settings: ml_collections.ConfigDict,
                    budget: uploads.PixelBudget) -> None:
  """The page, its static files, and the two calls only it needs: /api/fetch and /api/export."""
  app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

  @app.get("/", include_in_schema=False)
  async def page():
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

  @app.post("/api/fetch")
  async def fetch(request: FetchRequest) -> Response:
    """The image at a URL, checked, for the page to predict like an uploaded file."""
    fetched, mime = await run_in_threadpool(fetch_image, request.url, settings, budget)
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


def create_app(model, settings: ml_collections.ConfigDict,
               listen_host: str | None = None) -> FastAPI:
  """The app for one `TrainedModel` and the serve settings (configs/serve.py); requests
  may name `listen_host`, the loopback names and settings.allowed_hosts as their Host."""
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
  app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                     max_json_bytes=settings.max_json_bytes)
  app.add_middleware(SecurityHeadersMiddleware)
  app.add_middleware(HostCheckMiddleware,
                     allowed=allowed_names(settings.allowed_hosts, listen_host))
  budget = uploads.PixelBudget(settings.max_pixels_in_flight)
  add_model_routes(app, runner, settings, budget)
  neighbour_images.add_routes(app, runner)
  add_page_routes(app, runner, settings, budget)
  teach_routes.add_routes(app, runner, settings)
  return app


def load_app(workdir: str | pathlib.Path, settings: ml_collections.ConfigDict,
             listen_host: str | None = None) -> FastAPI:
  """Loads the workdir's model, compiles it for every batch size a request can use, builds the app."""
  from artclf.serve import predict as predict_lib  # Deferred: pulls in JAX.
  start = time.perf_counter()
  model = predict_lib.load_model(workdir)
  loaded = time.perf_counter() - start
  app = create_app(model, settings, listen_host)
  compiled = app.state.runner.warm_up(settings.max_batch_size)
  logging.info("model of %s loaded in %.1f s, compiled and warmed up in %.1f s",
               model.workdir, loaded, compiled)
  app.state.startup_seconds = {"load": loaded, "compile": compiled}
  return app
