"""The runs a server can serve: the one it started with, and those taught from the page.

  registry = runs.RunRegistry(start_workdir, teach_dir)
  registry.listing(serving="cpu_quick")  # [{'run', 'lineage', 'summary', 'serving'}, ...]
  registry.workdir("taught-20261202-140501")  # a listed run's folder (KeyError otherwise)
  registry.new_folder()                  # where the next taught run goes

Taught runs live in TEACH_DIR/runs/, one folder each, and are listed once `adapt` has
finished them (its adapt_summary.json is there), so a restart finds them again. Runs are
named by their folder's name only: no request names a path.
"""

from __future__ import annotations

import json
import pathlib
import time

from artclf.adapt import records

RUNS_FOLDER = "runs"
SUMMARY_FILE = records.SUMMARY_FILE  # written by artclf.adapt when a run is complete


def lineage_of(workdir: pathlib.Path) -> list[dict]:
  """The adapt steps that made a run, newest first: [{'run', 'base', 'rows', 'created'}]
  ([] for a run trained from scratch)."""
  chain, name = [], pathlib.Path(workdir).name
  record = records.read_lineage(workdir)
  while record:
    base = pathlib.Path(str(record.get("base", ""))).name
    chain.append({"run": name, "base": base, "rows": len(record.get("rows_used") or []),
                  "created": record.get("created", "")})
    record, name = record.get("base_lineage"), base
  return chain


def lineage_bases(workdir: pathlib.Path) -> list[pathlib.Path]:
  """The folders of the runs a run was adapted from, nearest first."""
  bases, record = [], records.read_lineage(workdir)
  while record and record.get("base"):
    bases.append(pathlib.Path(str(record["base"])))
    record = record.get("base_lineage")
  return bases


def read_summary(workdir: pathlib.Path) -> dict | None:
  """The before/after figures of a taught run (its adapt summary), without paths."""
  try:
    summary = json.loads((workdir / SUMMARY_FILE).read_text())
  except (OSError, ValueError):
    return None
  return {key: summary.get(key) for key in ("rows_used", "rows_train", "rows_holdout",
                                            "before", "after", "seconds")}


class RunRegistry:
  """The start run and the finished runs under TEACH_DIR/runs, by name."""

  def __init__(self, start_workdir: pathlib.Path, teach_dir: pathlib.Path):
    self.start = pathlib.Path(start_workdir).resolve()
    self.folder = pathlib.Path(teach_dir) / RUNS_FOLDER

  def runs(self) -> dict[str, pathlib.Path]:
    """{name: workdir}: the start run first, then the taught runs, oldest first."""
    found = {self.start.name: self.start}
    if self.folder.is_dir():
      for path in sorted(self.folder.iterdir()):
        if (path / SUMMARY_FILE).is_file():
          found.setdefault(path.name, path.resolve())
    return found

  def workdir(self, name: str) -> pathlib.Path:
    return self.runs()[name]

  def listing(self, serving: str) -> list[dict]:
    return [{"run": name, "serving": name == serving, "lineage": lineage_of(path),
             "summary": read_summary(path)} for name, path in self.runs().items()]

  def new_folder(self) -> pathlib.Path:
    """A fresh TEACH_DIR/runs/taught-<date>-<time> (not created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, number = self.folder / f"taught-{stamp}", 1
    while path.exists():
      number += 1
      path = self.folder / f"taught-{stamp}-{number}"
    return path
