"""Which licences the dataset takes, and the attribution each one asks for.

Wikimedia Commons states a file's licence in `extmetadata` (the CommonsMetadata extension):
`LicenseShortName` ("CC BY-SA 4.0", "CC0", "Public domain"), `LicenseUrl`, `UsageTerms`
(the long name), `AttributionRequired` ("true"/"false"), `Artist` and `Credit` (HTML).

`FREE_LICENCES` is the one list of what is taken: public domain, CC0, CC BY and CC BY-SA, any
version or national port. Everything else (NC, ND, GFDL-only, fair use, "all rights
reserved", no licence at all) is left out. `attribution` writes the credit line that CC BY and
CC BY-SA require (author, source, licence and its URL, and that the image was changed), which
goes into labels.csv's `credit` column and ATTRIBUTION.md.
"""

from __future__ import annotations

import dataclasses
import html.parser
import re

# (family, pattern on the normalised short name, attribution required by the licence itself)
FREE_LICENCES = (
    ("public-domain", re.compile(r"^(?:public domain|pd(?:[- ].*)?)$"), False),
    ("cc0", re.compile(r"^cc0(?: 1\.0)?(?: universal)?$"), False),
    ("cc-by", re.compile(r"^cc by (?P<version>\d\.\d)(?: (?P<port>[a-z]{2,3}(?:-[a-z]+)?))?$"),
     True),
    ("cc-by-sa",
     re.compile(r"^cc by-sa (?P<version>\d\.\d)(?: (?P<port>[a-z]{2,3}(?:-[a-z]+)?))?$"), True),
)
# The stored images are resized and re-encoded: CC BY(-SA) asks that changes be indicated.
CHANGES_NOTE = "resized"


@dataclasses.dataclass(frozen=True)
class Licence:
  """A free licence as labels.csv records it."""
  spdx: str                   # CC0-1.0, CC-BY-4.0, CC-BY-SA-3.0-DE, public-domain.
  short_name: str             # As Commons writes it: "CC BY-SA 4.0".
  url: str                    # LicenseUrl ('' for public domain).
  attribution_required: bool  # By the licence, or by the file's own AttributionRequired.


def _normalise(short_name: str) -> str:
  return " ".join(short_name.lower().replace("_", " ").split())


def free_licence(short_name: str, url: str = "",
                 attribution_required: str = "") -> Licence | None:
  """The licence of a Commons file if it is on `FREE_LICENCES`, else None."""
  name = _normalise(short_name)
  for family, pattern, requires in FREE_LICENCES:
    match = pattern.match(name)
    if not match:
      continue
    if family == "public-domain":
      spdx = "public-domain"
    elif family == "cc0":
      spdx = "CC0-1.0"
    else:
      spdx = f"{family.upper()}-{match['version']}"
      if match["port"]:
        spdx += "-" + match["port"].upper()
    required = requires or attribution_required.strip().lower() == "true"
    return Licence(spdx=spdx, short_name=short_name.strip(), url=url.strip(),
                   attribution_required=required)
  return None


class _TextOnly(html.parser.HTMLParser):
  """Collects the text of an HTML fragment (Commons' Artist and Credit are HTML)."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.parts: list[str] = []

  def handle_data(self, data):
    self.parts.append(data)


def plain_text(fragment: str) -> str:
  """'<a href="//commons...">Jane &amp; Joe</a>' -> 'Jane & Joe' (whitespace collapsed)."""
  parser = _TextOnly()
  parser.feed(fragment or "")
  parser.close()
  return " ".join("".join(parser.parts).split())


def attribution(licence: Licence, *, artist: str, credit: str, title: str,
                page_url: str, usage_terms: str = "") -> str:
  """The credit line for labels.csv; '' when neither the licence nor the file asks for one.

  Title, author, source, licence (Commons' `UsageTerms` long name where given, with its
  URL), where it was found, and that it was changed: what CC BY and CC BY-SA ask for.
  """
  if not licence.attribution_required:
    return ""
  author = plain_text(artist) or plain_text(credit) or "unknown author"
  source = plain_text(credit)
  parts = [f'"{title}" by {author}']
  if source and source != author and source.lower() != "own work":
    parts.append(f"source: {source}")
  name = plain_text(usage_terms) or licence.short_name
  parts.append(f"licensed {name} ({licence.url})" if licence.url else f"licensed {name}")
  parts.append(f"via Wikimedia Commons, {page_url}" if page_url else "via Wikimedia Commons")
  parts.append(CHANGES_NOTE)
  return "; ".join(parts)
