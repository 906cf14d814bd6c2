"""Harvesting a labelled set from the museums' open-access APIs: python -m artclf.museums --out=DIR

  harvest      the build: list, label, cap series, download, deduplicate, split, write
  sources      the API readers (Met, Cleveland, Art Institute of Chicago) -> MuseumRecord
  record       the record shape the readers, rules and harvest share
  rules        culture, medium and period from a record's text, and the drop rules
  date_text    date strings -> (begin, end) years
  http_client  the polite HTTP client: rate limit, concurrency, retries, timeouts
  image_store  decode, resize, atomic writes, hashes, the resumable manifest

Nothing here is imported by training or prediction.
"""
