"""The record shape shared by the API readers, the labelling rules and the builder.

Each museum API names its fields differently; `artclf.museums.sources` (and
`artclf.museums.commons` for Wikimedia Commons) map them onto `MuseumRecord`, so that
`artclf.museums.rules` and `artclf.museums.harvest` read one shape. Text fields are '' when
the source leaves them empty, years are None.

A record is one photograph. `object_id` names what it shows (a museum object, or a whole
monument for Commons) and decides the split; `image_key` names the photograph itself (its
file and manifest entry), so that several photographs of one object can share a split.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class MuseumRecord:
  """One museum object as read from an API, before labelling."""
  museum: str            # 'met', 'cle' or 'aic' (the `museum` column of labels.csv).
  object_id: str         # Prefixed ID as in the shared set: MET_<id>, CLE_<id>, CHI_<id>;
                         # WMC_<monument> for every Commons photograph of one monument.
  title: str = ""
  object_name: str = ""  # Met objectName, Cleveland type, AIC artwork_type_title.
  classification: str = ""  # Met classification, AIC classification_title.
  department: str = ""
  culture: str = ""      # Met culture, Cleveland culture list joined, AIC style_title and
                         # artist_display (the culture, for ancient objects).
  place: str = ""        # AIC place_of_origin, Met country and region.
  medium: str = ""       # Material and technique text (Met medium, CMA technique, ...).
  period: str = ""       # Period and dynasty text (Met period + dynasty).
  date_text: str = ""    # The museum's display date.
  begin_year: int | None = None  # The API's own numeric years, used when the text fails.
  end_year: int | None = None
  image_url: str = ""
  license: str = "CC0-1.0"
  credit: str = ""       # The attribution the licence requires ('' for CC0 / public domain).
  page_url: str = ""     # The photograph's description page (Commons), for ATTRIBUTION.md.
  image_id: str = ""     # The photograph's own ID when an object has several; '' = object_id.

  @property
  def image_key(self) -> str:
    """Names the photograph's file and manifest entry."""
    return self.image_id or self.object_id

  @property
  def source_url(self) -> str:
    """What labels.csv records as `source_url`: the museum image URL (as the shared set)."""
    return self.image_url
