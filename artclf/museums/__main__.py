"""Builds the Egyptian, Greek and Roman dataset from open-access APIs.

  python -m artclf.museums --out=/data/museum_art [--sources=met,cleveland,aic,commons] \
      [--limit=N] [--image_size=512] [--dry_run]

See `artclf.museums.harvest` for what it writes, and docs/museums.md.
"""

import dataclasses
import sys

from absl import app, flags

from artclf.museums import gazetteer, harvest

_DEFAULT = harvest.BuildConfig(out="")
flags.DEFINE_string("out", None, "Output folder (created; a second run resumes in it).")
flags.DEFINE_list("sources", list(harvest.SOURCES), "Sources to read: met, cleveland, aic "
                  "(the default) and commons (Wikimedia Commons photographs of monuments).")
flags.DEFINE_bool("dry_run", False, "Read the metadata and print the label tables it would "
                  "build; fetch no image and write nothing.")
flags.DEFINE_integer("limit", None, "At most this many usable records per source "
                     "(public domain, with an image), for trial runs.")
flags.DEFINE_integer("image_size", _DEFAULT.image_size,
                     "Longer side of the stored JPEGs, in pixels (never enlarged).")
flags.DEFINE_integer("max_image_pixels", _DEFAULT.max_image_pixels,
                     "Downloads with more pixels are refused (decompression bombs).")
flags.DEFINE_integer("workers", _DEFAULT.workers, "Threads fetching records and images.")
flags.DEFINE_integer("max_concurrency", _DEFAULT.max_concurrency,
                     "Requests in flight per API host.")
flags.DEFINE_float("timeout", _DEFAULT.timeout,
                   "Seconds before a silent connection is given up (then retried).")
flags.DEFINE_integer("retries", _DEFAULT.retries,
                     "Retries of a failed request (429, 5xx, network errors).")
flags.DEFINE_float("backoff", _DEFAULT.backoff,
                   "First retry wait in seconds; doubles every retry (with jitter).")
flags.DEFINE_float("max_retry_after", _DEFAULT.max_retry_after,
                   "Longest Retry-After (s) that is waited for; a longer one fails.")
flags.DEFINE_integer("series_max", _DEFAULT.series_max, "Titles shared by more than this "
                     "many objects of one museum are a series ...")
flags.DEFINE_integer("series_keep", _DEFAULT.series_keep,
                     "... of which only this many (lowest IDs) are kept.")
flags.DEFINE_bool("dedupe_perceptual", _DEFAULT.dedupe_perceptual, "Also drop pictures "
                  "with an equal 64-bit difference hash, not only equal pixels.")
flags.DEFINE_string("met_url", _DEFAULT.met_url, "Met Collection API base URL.")
flags.DEFINE_string("cleveland_url", _DEFAULT.cleveland_url,
                    "Cleveland Museum of Art Open Access API base URL.")
flags.DEFINE_string("aic_url", _DEFAULT.aic_url, "Art Institute of Chicago API base URL.")
flags.DEFINE_string("aic_iiif_url", _DEFAULT.aic_iiif_url,
                    "Art Institute of Chicago IIIF image server base URL.")
# Published limits: the Met 80 requests/s; AIC 60 requests/min (anonymous). Cleveland
# publishes none; stay gentle.
flags.DEFINE_float("met_rate", _DEFAULT.met_rate, "Requests/s to the Met (limit 80/s).")
flags.DEFINE_float("cleveland_rate", _DEFAULT.cleveland_rate, "Requests/s to Cleveland.")
flags.DEFINE_float("aic_rate", _DEFAULT.aic_rate, "Requests/s to the AIC API (60/min).")
flags.DEFINE_float("aic_iiif_rate", _DEFAULT.aic_iiif_rate,
                   "Requests/s to the AIC IIIF image server.")
flags.DEFINE_string("commons_url", _DEFAULT.commons_url, "MediaWiki API of Wikimedia Commons.")
flags.DEFINE_float("commons_rate", _DEFAULT.commons_rate,
                   "Requests/s to the Commons API (sent one at a time).")
flags.DEFINE_float("commons_image_rate", _DEFAULT.commons_image_rate,
                   "Thumbnail downloads/s from Commons.")
flags.DEFINE_integer("commons_depth", _DEFAULT.commons_depth,
                     "Levels of subcategories read below each monument's category.")
flags.DEFINE_integer("commons_per_monument", _DEFAULT.commons_per_monument,
                     "At most this many photographs per monument.")
flags.DEFINE_integer("commons_thumb_width", _DEFAULT.commons_thumb_width,
                     "Width of the Commons thumbnails fetched (then shrunk to --image_size).")
flags.DEFINE_string("gazetteer", _DEFAULT.gazetteer, "The monuments file (CSV).")
flags.DEFINE_string("user_agent", _DEFAULT.user_agent,
                    "User-Agent (and AIC-User-Agent) header sent to every server; add your "
                    "e-mail or URL (Wikimedia's User-Agent policy).")
flags.mark_flag_as_required("out")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(harvest.BuildConfig)}
  values["sources"] = tuple(s.strip().lower() for s in values["sources"] if s.strip())
  try:
    harvest.build(harvest.BuildConfig(**values))
  except (gazetteer.GazetteerError, ValueError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
