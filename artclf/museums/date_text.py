"""Parses museum date strings ("c. 1391-1353 BCE", "late 6th century BCE") into years.

Years are integers with BCE negative (there is no year 0; 1 BCE is -1). A parsed date is a
(begin, end) pair with begin <= end. The rules follow the ancient_art dataset README:

* eras: BCE/BC/B.C./B.C.E. and CE/AD/A.D./C.E., before or after the number; a side without
  an era takes the other side's era, and a date without any era is CE;
* "c.", "ca.", "about", "probably", ... are ignored;
* ranges "A-B", "A to B"; alternatives "A or B", "A/B", "A; B" take the first;
* abbreviated CE end years are expanded: "130-40" -> 130-140, "1805-7" -> 1805-1807,
  "138-92" -> 138-192 (BCE ranges run downwards, "664-30 BCE" is -664..-30);
* centuries and millennia, with early/mid/late (thirds), beginning of/end of (first/last
  fifth), first/second half and first..fourth quarter: "late 6th century BCE" -> -534..-501,
  "2nd-3rd century" -> 101..300.
"""

import re

_ERA_BCE = "bce"
_ERA_CE = "ce"

# Longest spellings first so that "b.c.e." is not read as "b.c." plus junk.
_ERA_PATTERNS = (
    (r"\bb\.\s*c\.\s*e\.?", " bce "),
    (r"\bbce\b", " bce "),
    (r"\bb\.\s*c\.?", " bce "),
    (r"\bbc\b", " bce "),
    (r"\ba\.\s*d\.?", " ce "),
    (r"\bc\.\s*e\.?", " ce "),
    (r"\bad\b", " ce "),
    (r"\bce\b", " ce "),
)

# Qualifiers that do not change the years.
_NOISE = re.compile(
    r"\b(?:circa|ca\.?|c\.|about|around|approximately|approx\.?|probably|possibly|perhaps|"
    r"likely|before|after|by|from|the|dated?|years?)\b|\?")

# Part of a century or millennium, as (start fraction, end fraction).
_PARTS = {
    "early": (0.0, 1 / 3),
    "mid": (1 / 3, 2 / 3),
    "middle": (1 / 3, 2 / 3),
    "late": (2 / 3, 1.0),
    "beginning of": (0.0, 0.2),
    "start of": (0.0, 0.2),
    "end of": (0.8, 1.0),
    "first half of": (0.0, 0.5),
    "second half of": (0.5, 1.0),
    "first quarter of": (0.0, 0.25),
    "second quarter of": (0.25, 0.5),
    "third quarter of": (0.5, 0.75),
    "fourth quarter of": (0.75, 1.0),
    "last quarter of": (0.75, 1.0),
}
_PART_RE = "|".join(sorted((re.escape(p) for p in _PARTS), key=len, reverse=True))

# One side of a range: optional era, optional part, a number, optional ordinal and unit,
# optional era.
_SIDE = (
    r"(?:(?P<{p}era1>bce|ce)\s+)?"
    r"(?:(?P<{p}part>" + _PART_RE + r")\s+)?"
    r"(?P<{p}num>\d{{1,4}})(?P<{p}ord>st|nd|rd|th)?"
    r"(?:\s+(?P<{p}unit>century|centuries|millennium|millennia))?"
    r"(?:\s+(?P<{p}era2>bce|ce)\b)?")
_RANGE_RE = re.compile(
    _SIDE.format(p="a") + r"\s*(?:-|\bto\b|\band\b)\s*" + _SIDE.format(p="b"))
_SINGLE_RE = re.compile(_SIDE.format(p="a"))


def _normalize(text: str) -> str:
  text = text.lower()
  text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)  # Unicode dashes and minus.
  # Take the first of several alternatives ("664-30 BCE OR 664-330 BCE").
  text = re.split(r"\bor\b|/|;", text)[0]
  text = re.sub(r"\bdynast(?:y|ies)\s+\d+(?:\s*-\s*\d+)?", " ", text)  # Not years.
  for pattern, replacement in _ERA_PATTERNS:
    text = re.sub(pattern, replacement, text)
  text = re.sub(r"\bmid-", "mid ", text)
  text = re.sub(r"\bcent\.", "century", text)
  text = _NOISE.sub(" ", text)
  text = text.replace(",", " ")
  return re.sub(r"\s+", " ", text).strip()


def _side(match: re.Match, prefix: str) -> dict:
  get = lambda name: match.group(prefix + name)
  return {
      "era": get("era1") or get("era2"),
      "part": get("part"),
      "num": int(get("num")),
      "ordinal": bool(get("ord")),
      "unit": get("unit"),
  }


def _span(side: dict, era: str) -> tuple[float, float]:
  """The (start, end) of one side in signed years (end exclusive for centuries)."""
  n = side["num"]
  unit = side["unit"]
  if unit is None and not side["ordinal"] and side["part"] is None:
    year = -n if era == _ERA_BCE else n
    return year, year
  size = 1000 if unit and unit.startswith("millenni") else 100
  if era == _ERA_BCE:
    start, end = -n * size, -(n - 1) * size - 1   # 6th century BCE: -600..-501.
  else:
    start, end = (n - 1) * size + 1, n * size     # 2nd century CE: 101..200.
  lo, hi = _PARTS.get(side["part"], (0.0, 1.0))
  length = end - start
  return start + lo * length, start + hi * length


def _expand_abbreviated_end(begin: int, end: int) -> int:
  """'130-40' -> 140: a shorter end number borrows the begin number's leading digits."""
  b, e = str(begin), str(end)
  if end < begin and len(e) < len(b):
    return int(b[:len(b) - len(e)] + e)
  return end


def parse_date_text(text: str | None) -> tuple[int, int] | None:
  """(begin, end) years of a museum date string, or None if it has no readable date."""
  if not text:
    return None
  norm = _normalize(str(text))
  if not norm:
    return None
  match = _RANGE_RE.search(norm)
  if match:
    left, right = _side(match, "a"), _side(match, "b")
    # "late 6th-early 3rd century": the left side borrows the right side's unit.
    if left["ordinal"] and not left["unit"]:
      left["unit"] = right["unit"] or "century"
    if right["ordinal"] and not right["unit"]:
      right["unit"] = left["unit"] or "century"
    is_year = lambda s: s["unit"] is None and not s["ordinal"] and s["part"] is None
    if is_year(left) != is_year(right):
      # "10th century-1234" style mixes are too rare to guess at; use the left side alone.
      match = None
    else:
      era_right = right["era"] or left["era"] or (_ERA_BCE if " bce" in norm else _ERA_CE)
      era_left = left["era"] or right["era"] or era_right
      if is_year(left) and era_left == era_right == _ERA_CE and not right["era"] == _ERA_BCE:
        right["num"] = _expand_abbreviated_end(left["num"], right["num"])
      start_left, end_left = _span(left, era_left)
      start_right, end_right = _span(right, era_right)
      begin = min(start_left, start_right)
      end = max(end_left, end_right)
      return round(begin), round(end)
  match = _SINGLE_RE.search(norm)
  if not match:
    return None
  side = _side(match, "a")
  era = side["era"] or (_ERA_BCE if " bce" in norm else _ERA_CE)
  start, end = _span(side, era)
  return round(start), round(end)


def midpoint(begin: int, end: int) -> float:
  return (begin + end) / 2
