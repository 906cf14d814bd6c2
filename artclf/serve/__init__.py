"""Using a trained model: artclf.predict(...), python -m artclf.predict, python -m artclf.serve

  predict          labels, probabilities, familiarity and nearest training photos for paths,
                   pictures and arrays
  collection       the CLI over files and folders: streaming batches, skipped entries named
  predict_output   the CLI's --output file (.csv/.jsonl/.json) and its --resume
  csv_cells        the one CSV writer (CLI output and page export): safe cells, no NaN
  gradcam          where each head looked (Grad-CAM overlays)

The web page and its JSON API (python -m artclf.serve, the `app` extra):

  app              the FastAPI routes; load_app() loads the model once
  model_runner     runs predict and Grad-CAM in worker threads, one call at a time
  uploads          reading and checking uploaded files (size, pixels per file, request and
                   in flight), each decoded once into the model's view; memory: handing it back
  url_fetch        fetching an image URL with size and time limits, public addresses only
  export           the corrected batch as CSV in the labels.csv format
  http_errors      4xx answers with one message; body_limit, host_check and
                   security_headers: middleware; http_server: uvicorn with connection limits
  neighbour_images the nearest training photos in answers, and their thumbnails
  teaching         the page's corrections, kept on the server with their photos
  teach_job        teaching (artclf.adapt) in the background: progress and outcome
  runs             the runs a server can serve, and where each came from (lineage)
  teach_routes     the corrections, teach and runs routes
  static/          the page (HTML, CSS, JS; teach.js: the teach panel, order, similar photos)
"""
