"""The local web page and JSON API for one catalogue desk: limits on uploads, URLs and batches.

  python -m artclf.serve --workdir=checkpoints/cpu_quick [--port=8000] [--config=configs/serve.py]

Then open http://127.0.0.1:8000/ (the JSON API is under /api, its schema at
/api/openapi.json). Any value can be overridden on the command line, e.g.
`--config.max_batch_size=64`.

Start-up loads the checkpoint, compiles every padded batch size a request can use (1 to 16
here) and warms Grad-CAM up, so that no request pays for a compilation. Measured on the
project's 2-core AMD EPYC with other jobs keeping the load average at 4-5: a ResNet50
model is ready in 32-37 s (3-5 s loading, 25-30 s compiling); the tiny test model in about 10 s.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # One uploaded (or fetched) image file; museum TIFFs and phone photos stay well under it.
  config.max_file_bytes = 40 * 1024 * 1024
  # A whole request; refused from its Content-Length, or as soon as more arrives.
  config.max_request_bytes = 200 * 1024 * 1024
  # Decoded pixels of one image, checked from its header before decoding (bombs).
  config.max_pixels = 64_000_000
  # Decoded pixels of all the images of one request, from their headers: 32 photos of 12
  # megapixels pass; twelve 62-megapixel PNGs (60 KB each) are refused with 413.
  config.max_request_pixels = 400_000_000
  # Pixels being decoded at once over all requests (each image decoded once, straight
  # into the model's view, then freed); a request waits for its turn beyond this.
  # 128 million RGB pixels are about 0.4 GB.
  config.max_pixels_in_flight = 128_000_000
  # A JSON body (POST /api/fetch, /api/export), refused from its size before parsing:
  # 10,000 export rows take about 6 MB.
  config.max_json_bytes = 16 * 1024 * 1024
  # Images in one POST /api/predict.
  config.max_batch_size = 32
  # Rows in one CSV export.
  config.max_export_rows = 10_000
  # Fetching an image URL: whole-download deadline, size cap, redirects followed.
  config.url_timeout_seconds = 10.0
  config.url_max_bytes = 40 * 1024 * 1024
  config.url_max_redirects = 3
  # Refuse URLs whose host resolves to a loopback, private or link-local address, so
  # that the page cannot be used to reach the machine's own services or the local network.
  config.url_allow_private_hosts = False
  # A task whose top probability is below this is flagged for a cataloguer to check.
  config.low_confidence_threshold = 0.6
  # Average with the mirrored photo (twice the compute per image).
  config.flip_tta = False
  # Longest side of the Grad-CAM overlays the page shows.
  config.overlay_size = 480
  # Host names (comma-separated) a request's Host header may name, besides the loopback
  # names and the --host address, which are always allowed: a page of another site that
  # rebinds its DNS name to this machine is then refused (400). '*' allows any.
  config.allowed_hosts = ""
  # Connections: seconds a client may take to send a request's headers, seconds an idle
  # kept-alive connection is held, the largest request head in bytes, and the open
  # connections at most (slow or idle clients cannot hold the server).
  config.header_timeout_seconds = 10.0
  config.keep_alive_seconds = 5
  config.max_header_bytes = 64 * 1024
  config.max_connections = 64
  # Nearest training photos given per image ("Similar in the training data" on the page);
  # a request's ?neighbours=k may ask for 0 to max_neighbours.
  config.neighbours = 4
  config.max_neighbours = 20
  # "Teach the model": corrections made on the page are saved in teach_dir (with their
  # photos) as they are made; teaching adapts the served run with them (artclf.adapt) into
  # teach_dir/runs/, holding out this fraction of them per class for before/after figures.
  config.teach = True
  config.teach_dir = "checkpoints/teach"
  config.teach_holdout_fraction = 0.2
  # Epochs and learning rate of that adapt; 0 takes configs/adapt.py's.
  config.teach_epochs = 0
  config.teach_learning_rate = 0.0
  return config
