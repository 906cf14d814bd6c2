"""What a build prints and writes beside labels.csv: count tables and ATTRIBUTION.md.

`format_tables` gives Markdown tables of records per source, labels per split, monuments
(Commons) and drop reasons; `attribution_markdown` lists, for every image whose licence is
not CC0, its title, author credit, licence and source page, as CC BY and CC BY-SA require
wherever the images are redistributed.
"""

from __future__ import annotations

import collections

from artclf import scheme

SPLITS = ("train", "val", "test")


def _source_table(rows, drops) -> list[str]:
  out = ["| museum | records seen | kept | dropped |", "|---|---:|---:|---:|"]
  kept_by_museum = collections.Counter(r.record.museum for r in rows)
  dropped_by_museum = collections.Counter(m for _, m, _, _ in drops.rows)
  for museum in sorted(set(kept_by_museum) | set(dropped_by_museum)):
    kept, dropped = kept_by_museum[museum], dropped_by_museum[museum]
    out.append(f"| {museum} | {kept + dropped} | {kept} | {dropped} |")
  return out


def _task_table(rows, task) -> list[str]:
  """Records per label of `task` (the labels the rows hold, unknown first) and split."""
  out = [f"| {task} | train | val | test | total |", "|---|---:|---:|---:|---:|"]
  counts = collections.Counter((getattr(r.labels, task), r.split) for r in rows)
  for name in [""] + sorted({label for label, _ in counts} - {""}):
    n = [counts[(name, s)] for s in SPLITS]
    out.append(f"| {name or '(empty)'} | {n[0]} | {n[1]} | {n[2]} | {sum(n)} |")
  return out


def _monument_table(rows) -> list[str]:
  """Photographs per monument, with its labels and split (Commons rows only)."""
  commons = [r for r in rows if r.record.museum == "commons"]
  if not commons:
    return []
  counts = collections.Counter(r.record.object_id for r in commons)
  first = {}
  for r in commons:
    first.setdefault(r.record.object_id, r)
  out = ["", "| monument | culture | period | site | split | photographs |",
         "|---|---|---|---|---|---:|"]
  for object_id in sorted(first, key=lambda o: (first[o].labels.culture, o)):
    r = first[object_id]
    out.append(f"| {r.record.object_name} | {r.labels.culture} | "
               f"{r.labels.period or '(empty)'} | {r.group} | {r.split} | "
               f"{counts[object_id]} |")
  return out


def format_tables(rows, drops) -> str:
  """Counts per source and per label and split, monuments, and drop reasons (Markdown)."""
  out = _source_table(rows, drops)
  # The harvest labels records in the shared set's scheme (artclf.museums.rules).
  for task in scheme.DEFAULT.tasks:
    out += [""] + _task_table(rows, task)
  out += _monument_table(rows)
  out += ["", "| museum | drop reason | n |", "|---|---|---:|"]
  for (museum, reason), n in sorted(drops.counts().items(),
                                    key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
    out.append(f"| {museum} | {reason} | {n} |")
  return "\n".join(out)


def format_commons_stats(stats) -> str:
  """The category walk's counts, one line each."""
  lines = [f"commons: {stats.categories} categories read; "
           f"{stats.categories_reached_twice} reached twice (loops) and "
           f"{stats.other_monument_categories} of other monuments not re-entered; "
           f"{sum(stats.excluded_subcategories.values())} subcategories excluded by name; "
           f"{stats.files_beyond_cap} files beyond the per-monument cap not used; "
           f"{stats.maxlag_waits} maxlag waits"]
  if stats.excluded_subcategories:
    top = ", ".join(f"{w} {n}" for w, n in stats.excluded_subcategories.most_common(12))
    lines.append(f"commons: subcategories excluded, by word: {top}")
  if stats.empty_monuments:
    lines.append("commons: WARNING: no files found for "
                 f"{', '.join(stats.empty_monuments)} (check their categories)")
  return "\n".join(lines)


def _cell(text: str) -> str:
  return (text or "").replace("|", "\\|").replace("\n", " ")


def attribution_markdown(rows) -> str:
  """ATTRIBUTION.md: the credit every non-CC0 image of the set needs."""
  credited = [r for r in rows if r.record.license != "CC0-1.0"]
  out = ["# Attribution", "",
         "Images of this folder that are not CC0. Those under CC BY or CC BY-SA must be "
         "credited as below wherever they are shown or redistributed; those under CC BY-SA "
         "pass their licence on to adaptations. All images were resized and re-encoded "
         "(the change the licences ask to be indicated). Public-domain images need no "
         "credit and are listed as a courtesy.", "",
         "| image | title | licence | credit | source page |", "|---|---|---|---|---|"]
  for r in sorted(credited, key=lambda r: r.image.path if r.image else r.record.image_key):
    image = r.image.path if r.image else r.record.image_key
    out.append(f"| {_cell(image)} | {_cell(r.record.title)} | {_cell(r.record.license)} | "
               f"{_cell(r.record.credit) or '(not required)'} | "
               f"{_cell(r.record.page_url or r.record.source_url)} |")
  return "\n".join(out) + "\n"
