"""Harvesting a labelled set from open-access APIs: python -m artclf.museums --out=DIR

  harvest      the build: list, label, cap, split, download, deduplicate, write
  sources      the museum API readers (Met, Cleveland, Art Institute of Chicago) -> MuseumRecord
  commons      the Wikimedia Commons reader: photographs of monuments -> MuseumRecord
  gazetteer    the monuments (monuments.csv): category, culture, dates, name filters
  licences     the free-licence list and the attribution each licence asks for
  record       the record shape the readers, rules and harvest share
  rules        culture, medium and period from a record's text, and the drop rules
  date_text    date strings -> (begin, end) years
  splits       train / val / test by object group (museum object, monument site)
  report       the printed tables and ATTRIBUTION.md
  http_client  the polite HTTP client: rate limit, concurrency, retries, timeouts
  image_store  decode, resize, atomic writes, hashes, the resumable manifest

Nothing here is imported by training or prediction.
"""
