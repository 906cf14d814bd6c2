"""The monuments whose Wikimedia Commons photographs make the architecture set.

The data is `monuments.csv` beside this module (one row per monument, a comment with the
sources of its dates above each row; see that file's header). `load_gazetteer` reads and
checks it; a bad row stops the build with one line naming the file, line and value.

Each monument gives the labels of every photograph taken from its category: its culture,
`architecture`, and the period that its years give under the shared rules
(`rules.period_from_years`). Monuments of one site share a `group`, and so a split.

The name filters here keep mixed content out: a subcategory whose name speaks of people,
events, maps, plans, drawings, models, museums, sculpture and the like is not entered
(`GENERAL_EXCLUDE`, plus the monument's own `exclude` words), and a file whose title does
(`FILE_EXCLUDE`) is not taken.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re

from artclf.scheme import DEFAULT as SCHEME  # the harvest labels in the shared set's scheme
from artclf.museums import rules

GAZETTEER_FILE = os.path.join(os.path.dirname(__file__), "monuments.csv")
COLUMNS = ("key", "name", "group", "category", "culture", "begin", "end", "exclude", "rule")

# Subcategories about something other than the building as it stands.
GENERAL_EXCLUDE = (
    "people", "person", "portraits?", "visitors?", "tourists?", "tourism", "selfies?",
    "weddings?", "events?", "concerts?", "festivals?", "ceremon(?:y|ies)", "protests?",
    "demonstrations?", "maps?", "plans?", "drawings?", "diagrams?", "illustrations?",
    "engravings?", "paintings?", "prints?", "postcards?", "stamps?", "coins?", "banknotes?",
    "logos?", "models?", "replicas?", "reconstructions?", "3d", "renderings?",
    "computer", "museums?", "exhibitions?", "sculptures?", "statues?", "statuettes?",
    "busts?", "stela[e]?", "videos?", "films?", "in art", "in popular culture",
    "in fiction", "depictions?", "souvenirs?", "artefacts?", "artifacts?", "objects? from",
    "finds?", "excavated", "animals?", "birds?", "cats?", "dogs?",
)
# File titles of drawings, plans, scans and other non-photographs.
FILE_EXCLUDE = (
    "map", "plan", "drawing", "diagram", "sketch", "reconstruction", "model", "render",
    "rendering", "3d", "engraving", "lithograph", "painting", "postcard", "stamp", "coin",
    "logo", "illustration", "scheme", "section", "elevation", "floorplan", "selfie",
)


class GazetteerError(ValueError):
  """A gazetteer row that cannot be used (the message names the file, line and value)."""


@dataclasses.dataclass(frozen=True)
class Monument:
  key: str             # Lower-case ID: the object_id is WMC_<key>.
  name: str
  group: str           # Site: monuments of one group share a split.
  category: str        # "Category:Parthenon".
  culture: str
  begin: int           # Years of the building shown, BCE negative.
  end: int
  exclude: tuple[str, ...] = ()
  rule: str = ""

  @property
  def object_id(self) -> str:
    return f"WMC_{self.key}"

  @property
  def period(self) -> str:
    return rules.period_from_years(self.culture, self.begin, self.end)

  @property
  def date_text(self) -> str:
    def year(y):
      return f"{-y} BCE" if y < 0 else f"{y} CE"
    return year(self.begin) if self.begin == self.end else f"{year(self.begin)}-{year(self.end)}"

  def labels(self) -> rules.Labelled:
    return rules.Labelled(culture=self.culture, medium="architecture", period=self.period,
                          begin_year=self.begin, end_year=self.end)


def _words_pattern(words) -> re.Pattern:
  return re.compile(r"(?<![\w])(?:" + "|".join(words) + r")(?![\w])", re.I)


_GENERAL = _words_pattern(GENERAL_EXCLUDE)
_FILE = _words_pattern(FILE_EXCLUDE)


def _bare_name(title: str) -> str:
  """'Category:Parthenon at night' -> 'Parthenon at night'; underscores read as spaces."""
  return title.split(":", 1)[-1].replace("_", " ")


def subcategory_excluded(monument: Monument, subcategory: str) -> str | None:
  """The word that keeps a subcategory out, or None if it is entered."""
  name = _bare_name(subcategory)
  match = _GENERAL.search(name)
  if match is None and monument.exclude:
    match = _words_pattern(re.escape(w) for w in monument.exclude).search(name)
  return match.group(0).lower() if match else None


def file_excluded(title: str) -> str | None:
  """The word of a file title that marks a non-photograph, or None."""
  name = re.sub(r"[_\-.,()]+", " ", _bare_name(title))
  match = _FILE.search(name)
  return match.group(0).lower() if match else None


def _row_error(path: str, line: int, message: str) -> GazetteerError:
  return GazetteerError(f"{path}, line {line}: {message}")


def _monument(path: str, line: int, row: dict) -> Monument:
  missing = [c for c in ("key", "name", "category", "culture", "begin", "end") if not row[c]]
  if missing:
    raise _row_error(path, line, f"empty {', '.join(missing)}")
  if not re.fullmatch(r"[a-z0-9_]+", row["key"]):
    raise _row_error(path, line, f"key {row['key']!r} is not lower-case letters, digits, _")
  if not row["category"].startswith("Category:"):
    raise _row_error(path, line, f"category {row['category']!r} lacks the Category: prefix")
  if row["culture"] not in SCHEME.classes["culture"]:
    raise _row_error(path, line, f"culture {row['culture']!r} is not one of "
                     f"{', '.join(SCHEME.classes['culture'])}")
  try:
    begin, end = int(row["begin"]), int(row["end"])
  except ValueError:
    raise _row_error(path, line, f"years {row['begin']!r}, {row['end']!r} are not integers")
  if begin > end:
    raise _row_error(path, line, f"begin {begin} is after end {end}")
  if (begin + end) / 2 >= rules.END_OF_ANTIQUITY[row["culture"]]:
    raise _row_error(path, line, f"years {begin}..{end} are post-antique for "
                     f"{row['culture']}")
  exclude = tuple(w.strip().lower() for w in (row["exclude"] or "").split("|") if w.strip())
  return Monument(key=row["key"], name=row["name"], group=row["group"] or row["key"],
                  category=row["category"], culture=row["culture"], begin=begin, end=end,
                  exclude=exclude, rule=row["rule"] or "")


def load_gazetteer(path: str = GAZETTEER_FILE) -> list[Monument]:
  """The checked monuments of a gazetteer file (lines starting with '#' are comments)."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise GazetteerError(f"{path}: cannot be read ({e.strerror})") from None
  numbered = [(i + 1, l) for i, l in enumerate(lines) if l.strip() and not l.startswith("#")]
  if not numbered or tuple(next(csv.reader([numbered[0][1]]))) != COLUMNS:
    raise GazetteerError(f"{path}: the first row that is not a comment must be the header "
                         f"{','.join(COLUMNS)}")
  monuments, keys, categories = [], set(), set()
  for line, text in numbered[1:]:
    values = next(csv.reader(io.StringIO(text)))
    if len(values) != len(COLUMNS):
      raise _row_error(path, line, f"{len(values)} fields, expected {len(COLUMNS)}")
    monument = _monument(path, line, dict(zip(COLUMNS, values)))
    if monument.key in keys:
      raise _row_error(path, line, f"key {monument.key!r} appears twice")
    if monument.category in categories:
      raise _row_error(path, line, f"category {monument.category!r} appears twice")
    keys.add(monument.key)
    categories.add(monument.category)
    monuments.append(monument)
  return monuments
