"""Culture, medium and period of a museum record, by the rules of the ancient_art README.

`derive_labels(record)` returns a `Labelled` result: either the three labels (each '' when
unknown) and the years used, or a drop reason. The rules, in order:

1. Drops: drawings, photographs and prints of antiquities; modern objects, casts and
   forgeries; post-antique periods (Coptic, Byzantine, Islamic, ...); cultures other than
   Egyptian, Greek and Roman (Etruscan, Cypriot, Near Eastern, ...); records naming both
   Greek and Roman ("culture uncertain"); anything whose date midpoint is 476 CE or later
   (Egyptian: 400 CE or later, the shared set's cut); Greek/Roman before 1100 BCE (Bronze
   Age or earlier).
2. Culture: an Egyptian department (Met "Egyptian Art"; Cleveland "Egyptian and Ancient
   Near Eastern Art" when the culture says Egypt) gives `egyptian`; otherwise the culture
   and place text ("Greek, Attic", "Roman", "Greece", "Egypt"); otherwise the README's
   object rules for records without a culture (coin denominations, Greek fine wares,
   blown glass, marble and sculpture by date).
3. Medium: painting (facsimiles, wall paintings, encaustic portraits, mosaics, figured
   vase painting), tomb models, then the first object word of the title (then object name,
   then classification) decides between empty (vessels, jewellery, amulets, coins, ...),
   architecture (lintels, jambs, columns, wall blocks, ...) and sculpture (statues,
   heads, reliefs, stelae, ...); a deity or animal with no object word is sculpture.
4. Period: Egyptian period and dynasty names where they name one bucket; otherwise the
   midpoint of the years with the culture's boundaries. A point on a boundary belongs to
   the later period; a range with more than a quarter outside its midpoint's period is
   empty.
"""

import dataclasses
import math
import re

from artclf.scheme import DEFAULT as SCHEME  # the harvest labels in the shared set's scheme
from artclf.museums import date_text
from artclf.museums.record import MuseumRecord

# Period boundaries per culture: (name, start, end), start inclusive, end exclusive.
PERIOD_BOUNDARIES = {
    "egyptian": (("early", -math.inf, -2030), ("middle", -2030, -1070), ("late", -1070, 395)),
    "greek": (("early", -math.inf, -480), ("middle", -480, -323), ("late", -323, -31)),
    "roman": (("early", -math.inf, -27), ("middle", -27, 235), ("late", 235, 476)),
}
# Date midpoints from which an object is no longer ancient (dropped).
END_OF_ANTIQUITY = {"egyptian": 400, "greek": 476, "roman": 476}
# Greek and Roman objects before this midpoint are Bronze Age or earlier (dropped).
START_OF_SCOPE = -1100
# Largest share of a date range that may lie outside the midpoint's period.
MAX_OUTSIDE_SHARE = 0.25

assert all(name in SCHEME.classes["period"] for b in PERIOD_BOUNDARIES.values() for name, *_ in b)


@dataclasses.dataclass(frozen=True)
class Labelled:
  """Labels of one record ('' = unknown), or why it was dropped."""
  culture: str = ""
  medium: str = ""
  period: str = ""
  begin_year: int | None = None
  end_year: int | None = None
  drop_reason: str | None = None

  @property
  def kept(self) -> bool:
    return self.drop_reason is None


def _words(*patterns: str) -> re.Pattern:
  """A case-insensitive regex matching any of the phrases as whole words (plurals too)."""
  return re.compile(r"(?<![\w-])(?:" + "|".join(patterns) + r")(?:e?s)?(?![\w-])", re.I)


def _any(pattern: re.Pattern, *texts: str) -> re.Match | None:
  for text in texts:
    match = pattern.search(text or "")
    if match:
      return match
  return None


# --- Drops ------------------------------------------------------------------------------

_DRAWING_OR_PHOTO = _words(r"drawing", r"photograph", r"albumen print", r"gelatin silver",
                           r"print", r"watercolou?r", r"engraving", r"lithograph",
                           r"etching", r"photo album")
_MODERN = _words(r"forgery", r"forgeries", r"fake", r"modern copy", r"modern cast",
                 r"plaster cast", r"cast of", r"replica", r"pastiche", r"electrotype")
_POST_ANTIQUE_PERIOD = _words(r"coptic", r"byzantine", r"islamic", r"late antique",
                              r"medieval", r"ottoman", r"fatimid", r"mamluk", r"abbasid",
                              r"umayyad", r"sasanian", r"sassanian", r"renaissance",
                              r"baroque", r"qing", r"ming")
# Cultures out of scope, as named in culture/place text.
_OTHER_CULTURE = _words(
    r"etruscan", r"etruria", r"cypriot", r"cypriote", r"cyprus", r"minoan", r"mycenaean",
    r"cycladic", r"helladic", r"villanovan", r"italic", r"faliscan", r"daunian",
    r"messapian", r"phoenician", r"punic", r"carthaginian", r"assyrian", r"babylonian",
    r"sumerian", r"akkadian", r"mesopotamian?", r"iran", r"iranian", r"achaemenid",
    r"parthian", r"elamite", r"hittite", r"urartian", r"anatolian", r"levantine",
    r"moche", r"nasca", r"nazca", r"andean", r"peru", r"chinese", r"china", r"japanese",
    r"indian", r"india", r"bactrian", r"gandharan?", r"celtic", r"iberian",
    r"south arabian", r"near eastern")
_EGYPTIAN_DEPARTMENT = re.compile(r"\begypt", re.I)
_EGYPT = re.compile(r"\begypt|\bfayum\b|\balexandria", re.I)
_ROMAN = re.compile(r"\broman\b|\brome\b|\bromano-|-roman\b", re.I)
_GREEK = _words(r"greek", r"greece", r"hellenistic", r"attic", r"attica", r"athens",
                r"athenian", r"corinthian", r"corinth", r"laconian", r"laconia", r"sparta",
                r"spartan", r"boeotian", r"boeotia", r"euboean", r"east greek", r"ionian",
                r"rhodian", r"south italian", r"apulian", r"apulia", r"campanian",
                r"campania", r"lucanian", r"paestan", r"sicilian greek", r"magna graecia",
                r"tarentine", r"macedonian")

# --- Culture rules for records without a culture (AIC) ---------------------------------

_ROMAN_COIN = _words(r"denarius", r"denarii", r"aureus", r"aurei", r"sestertius",
                     r"sestertii", r"dupondius", r"antoninianus", r"argenteus", r"quinarius",
                     r"solidus", r"follis")
_GREEK_COIN = _words(r"tetradrachm", r"didrachm", r"drachm", r"drachma", r"obol",
                     r"stater", r"hemidrachm", r"decadrachm")
_GREEK_WARE = re.compile(
    r"black[- ]figure|red[- ]figure|white[- ]ground|black[- ]glaze|gnathia|apulian|"
    r"campanian|lucanian|attic|corinthian", re.I)
_BLOWN_GLASS = re.compile(r"\b(?:mou?ld[- ])?blown\b", re.I)
_CORE_FORMED_GLASS = re.compile(r"core[- ]formed|rod[- ]formed|mosaic[- ]glass|millefiori",
                                re.I)
_MARBLE = re.compile(r"\bmarble\b", re.I)

# --- Medium ------------------------------------------------------------------------------

_FIGURED_WARE = re.compile(r"black[- ]figure|red[- ]figure|white[- ]ground|gnathia", re.I)
_PAINTING = _words(r"paintings?", r"wall painting", r"facsimile", r"encaustic", r"tempera",
                   r"fresco", r"mummy portrait", r"portrait panel", r"panel portrait",
                   r"funerary portrait", r"tesserae", r"mosaic")
_MOSAIC_GLASS = re.compile(r"mosaic[- ]glass|glass mosaic|mosaic bowl|mosaic inlay", re.I)
_MODEL = _words(r"model")
_SCULPTOR_MODEL = re.compile(r"sculptor'?s'? model|trial piece|sculptor'?s study", re.I)
_MODEL_WITH_FIGURES = _words(r"offering bearer", r"bearer", r"boatm[ae]n", r"workshop",
                             r"brewer", r"baker", r"butcher", r"servant", r"carpenter",
                             r"weaver", r"figure", r"figurine", r"porter", r"musician")
_MARBLE_LEKYTHOS = re.compile(r"marble.*lekythos|lekythos.*marble|funerary lekythos", re.I)
_ARCHITECTURE_FIRST = re.compile(r"\bcampana\b|\bfountain\b", re.I)
# Strong object words that settle an empty medium wherever they appear.
_STRONG_EMPTY = _words(r"amulet", r"scarab", r"scaraboid", r"seal", r"sealing", r"bead",
                       r"coin", r"ostracon", r"ostraca", r"papyrus", r"papyri", r"cameo",
                       r"intaglio", r"gem")
_GLASS = re.compile(r"\bglass\b", re.I)

_EMPTY_WORDS = (
    # Jewellery, amulets and small finds.
    r"jewelry", r"jewellery", r"necklace", r"collar", r"earring", r"ear ?stud", r"ear ?plug",
    r"ring", r"finger ring", r"bracelet", r"anklet", r"armlet", r"pendant", r"diadem",
    r"fibula", r"fibulae", r"brooch", r"hairpin", r"pin", r"inlay", r"tile", r"plaque",
    r"weight", r"spindle", r"needle", r"sandal", r"token", r"label", r"tag",
    # Coins.
    r"tetradrachm", r"didrachm", r"drachm", r"drachma", r"stater", r"obol", r"denarius",
    r"denarii", r"aureus", r"sestertius", r"dupondius", r"antoninianus", r"argenteus",
    r"solidus", r"follis",
    # Writing, textiles, burial equipment.
    r"textile", r"tunic", r"shroud", r"coffin", r"mummy mask", r"mask", r"cartonnage",
    r"mummy", r"canopic jar", r"shabti box", r"shabti jar",
    # Vessels.
    r"vessel", r"vase", r"jar", r"jug", r"juglet", r"bowl", r"cup", r"beaker", r"bottle",
    r"flask", r"dish", r"plate", r"platter", r"goblet", r"chalice", r"amphora",
    r"amphorae", r"amphoriskos", r"krater", r"crater", r"kylix", r"kylikes", r"lekythos",
    r"lekythoi", r"hydria", r"hydriai", r"oinochoe", r"oinochoai", r"olpe", r"pelike",
    r"skyphos", r"skyphoi", r"kantharos", r"kantharoi", r"aryballos", r"aryballoi",
    r"alabastron", r"alabastra", r"pyxis", r"pyxides", r"lekanis", r"lebes", r"dinos",
    r"psykter", r"rhyton", r"askos", r"askoi", r"phiale", r"stamnos", r"loutrophoros",
    r"kalpis", r"kothon", r"exaleiptron", r"mastos", r"mastoid", r"kyathos", r"situla",
    r"unguentarium", r"unguentaria", r"ewer", r"basin", r"cauldron", r"lamp", r"strainer",
    r"sieve", r"spoon", r"ladle", r"pitcher", r"tray", r"urn", r"cinerary urn",
    r"container", r"pot", r"kohl tube", r"tube",
    # Cosmetic objects, tools, weapons, furniture, instruments, games.
    r"cosmetic", r"kohl", r"palette", r"mirror", r"comb", r"razor", r"tweezers", r"tool",
    r"chisel", r"adze", r"axe", r"ax", r"knife", r"knives", r"dagger", r"sword", r"spear",
    r"spearhead", r"arrowhead", r"mace", r"mace head", r"weapon", r"shield", r"helmet",
    r"armor", r"armour", r"greave", r"chair", r"stool", r"bed", r"headrest", r"box",
    r"chest", r"casket", r"furniture", r"furniture leg", r"sistrum", r"sistra", r"harp",
    r"clapper", r"rattle", r"instrument", r"game", r"gaming", r"senet", r"game board",
    r"knucklebone", r"foundation deposit", r"offering table", r"offering tray", r"boat",
    r"cameo", r"gem", r"intaglio", r"strigil", r"handle", r"spout", r"hand mirror",
    r"girdle", r"pectoral", r"staff", r"stave", r"wedge", r"fitting", r"ornament",
    r"shabti coffin", r"case", r"hoe", r"sickle", r"net", r"fishhook", r"statue base",
    r"implement", r"mold", r"mould", r"book of the dead", r"tablet", r"cowroid", r"oar",
    r"(?:shabti|shawabti|shawabty|ushabti) (?:box|jar|chest|coffin)",
)
_ARCHITECTURE_WORDS = (
    r"lintel", r"jamb", r"door jamb", r"doorjamb", r"false door", r"door", r"doorway",
    r"niche", r"talatat", r"talatat block", r"block", r"wall block", r"relief block",
    r"block from a wall", r"wall fragment", r"architrave", r"column", r"column drum",
    r"capital", r"pilaster", r"cornice", r"antefix", r"antefixes", r"sima", r"acroterion",
    r"acroteria", r"metope", r"triglyph", r"window grille", r"window", r"chapel",
    r"chapel wall", r"mastaba", r"burial chamber", r"tomb wall", r"wall", r"pavement",
    r"fountain", r"water spout", r"lion-head spout", r"campana plaque", r"entablature",
    r"pediment", r"balustrade", r"threshold", r"architectural element",
    r"architectural fragment", r"architectural member", r"architectural relief",
)
_SCULPTURE_WORDS = (
    r"statue", r"statuette", r"statuary", r"figure", r"figurine", r"head", r"bust",
    r"torso", r"face", r"relief", r"relief fragment", r"stela", r"stele", r"stelae",
    r"cippus", r"cippi", r"shabti", r"shawabti", r"shawabty", r"ushabti", r"sphinx",
    r"sphinxes", r"sarcophagus", r"sarcophagi", r"sarcophagus panel", r"protome",
    r"portrait", r"portrait head", r"naiskos", r"colossus", r"herm", r"block statue",
    r"group statue", r"pair statue", r"offering bearer", r"votive head", r"doll",
)


def _keyword_table() -> tuple[re.Pattern, dict[str, str]]:
  table = {}
  for medium, words in (("", _EMPTY_WORDS), ("architecture", _ARCHITECTURE_WORDS),
                        ("sculpture", _SCULPTURE_WORDS)):
    for word in words:
      table[word] = medium
  # Longest phrases first: at one position the regex takes the first alternative, so
  # "block statue" beats "block" and "relief block" beats "relief".
  ordered = sorted(table, key=len, reverse=True)
  pattern = re.compile(
      r"(?<![\w-])(" + "|".join(ordered) + r")(?:e?s)?(?![\w-])", re.I)
  return pattern, table


_OBJECT_WORD, _OBJECT_WORD_MEDIUM = _keyword_table()
_LOOKUP = {re.sub(r"\\", "", k).lower(): v for k, v in _OBJECT_WORD_MEDIUM.items()}

_DEITY_OR_ANIMAL = _words(
    r"osiris", r"isis", r"horus", r"harpokrates", r"harpocrates", r"anubis", r"thoth",
    r"amun", r"amun-re", r"ptah", r"sakhmet", r"sekhmet", r"hathor", r"bastet", r"bes",
    r"taweret", r"apis", r"nefertum", r"wadjet", r"neith", r"khonsu", r"mut", r"min",
    r"imhotep", r"re-horakhty", r"maat", r"nephthys", r"sobek", r"khnum", r"aten",
    r"serapis", r"zeus", r"athena", r"apollo", r"aphrodite", r"venus", r"eros", r"hermes",
    r"mercury", r"herakles", r"hercules", r"dionysos", r"bacchus", r"artemis", r"nike",
    r"ox", r"oxen", r"bull", r"cow", r"calf", r"goose", r"geese", r"duck", r"bird",
    r"falcon", r"ibis", r"cat", r"dog", r"jackal", r"lion", r"lioness", r"baboon",
    r"monkey", r"hippopotamus", r"crocodile", r"cobra", r"snake", r"frog", r"hedgehog",
    r"ram", r"horse", r"donkey", r"fish", r"shrew", r"ichneumon", r"griffin", r"boar",
    # People, postures and body parts of statues.
    r"god", r"goddess", r"king", r"queen", r"prince", r"princess", r"priest",
    r"priestess", r"official", r"scribe", r"man", r"men", r"woman", r"women", r"boy",
    r"girl", r"child", r"children", r"youth", r"athlete", r"warrior", r"kneeling",
    r"seated", r"standing", r"striding", r"hand", r"foot", r"feet", r"arm", r"leg",
    r"nose", r"lips", r"ear", r"eye", r"sculpture")


def _object_word_medium(*texts: str) -> str | None:
  """Medium of the first object word in the first text that has one; None if none."""
  for text in texts:
    match = _OBJECT_WORD.search(text or "")
    if match:
      return _lookup_medium(match.group(1))
  return None


def _lookup_medium(word: str) -> str:
  word = word.lower()
  for key, medium in _LOOKUP.items():
    if re.fullmatch(key, word):
      return medium
  return ""


def derive_medium(record: MuseumRecord) -> str:
  """architecture | painting | sculpture | '' for a kept record (README medium rules)."""
  title, klass, material = record.title, record.classification, record.medium
  # The Met's objectName reads "Type, subject, ...": its first part names the object.
  name_type, _, name_rest = (record.object_name or "").partition(",")
  texts = (name_type, title, name_rest, klass)
  # 1. Painting: facsimiles, wall paintings, encaustic portraits, mosaics, figured vases.
  if _any(_FIGURED_WARE, title, name_type, klass, material):
    return "painting"
  painting = _any(_PAINTING, title, name_type, klass, material)
  if painting and not _any(_MOSAIC_GLASS, title, name_type, material):
    return "painting"
  # 2. Models: sculptor's models are sculpture; tomb models only when they show figures.
  if _any(_SCULPTOR_MODEL, title, record.object_name):
    return "sculpture"
  if _any(_MODEL, title, name_type):
    rest = [_MODEL.sub(" ", t or "") for t in (name_type, title, name_rest)]
    if _any(_MODEL_WITH_FIGURES, *rest):
      return "sculpture"
    medium = _object_word_medium(*rest)
    if medium is not None:
      return medium
    return "sculpture" if _any(_DEITY_OR_ANIMAL, *rest) else ""
  # Reviewed special cases of the Greek and Roman rules.
  if _any(_MARBLE_LEKYTHOS, title, name_type, material):
    return "sculpture"
  if _any(_ARCHITECTURE_FIRST, title, name_type):
    return "architecture"
  # 3. Out of scope objects, whatever else the title names.
  if _any(_STRONG_EMPTY, title, name_type, klass):
    return ""
  if _any(_GLASS, material) and not _any(_SCULPTURE_ONLY_GLASS, title):
    return ""
  # 4./5. The first object word decides: empty, architecture or sculpture.
  medium = _object_word_medium(*texts)
  if medium == "sculpture" and _any(_RELIEF_ON_BUILDING, title, record.object_name):
    return "architecture"  # A relief on a lintel, jamb, wall block or chapel wall.
  if medium is not None:
    return medium
  # 6. Deity, animal and human figures, and the museum's own "Sculpture" category.
  return "sculpture" if _any(_DEITY_OR_ANIMAL, *texts) else ""


# Relief-decorated building parts count as architecture (loose relief fragments do not).
_RELIEF_ON_BUILDING = _words(r"lintel", r"jamb", r"door ?jamb", r"false door", r"talatat",
                             r"relief block", r"block from", r"wall block", r"chapel",
                             r"burial chamber", r"tomb wall", r"temple wall", r"niche",
                             r"door sill", r"architrave")


# Glass objects that are still figures (rare: cast glass heads and statuettes).
_SCULPTURE_ONLY_GLASS = _words(r"statue", r"statuette", r"head of", r"figure of", r"bust")


# --- Period ----------------------------------------------------------------------------

# Egyptian period and dynasty names -> period bucket.
_EGYPTIAN_PERIOD_NAMES = (
    (r"predynastic|naqada|badarian|early dynastic|archaic period|old kingdom|"
     r"first intermediate|protodynastic|dynasty 0", "early"),
    (r"middle kingdom|second intermediate|new kingdom|hyksos|amarna|ramesside|"
     r"thutmoside", "middle"),
    (r"third intermediate|late period|saite|kushite|nubian dynasty|persian period|"
     r"macedonian|ptolemaic|roman period|greco-roman|graeco-roman|roman|meroitic|"
     r"napatan", "late"),
)


def _dynasty_bucket(number: int) -> str | None:
  if 1 <= number <= 10:
    return "early"
  if 12 <= number <= 20:
    return "middle"
  if 21 <= number <= 31:
    return "late"
  return None  # Dynasty 11 spans the First Intermediate Period and the Middle Kingdom.


def egyptian_period_names(text: str) -> tuple[set[str], bool]:
  """Period buckets named in an Egyptian period text, and whether it is hedged ('or later')."""
  text = (text or "").lower()
  # Facsimiles: "Twentieth Century; original New Kingdom" -> the original's period.
  if "original" in text:
    text = text.split("original", 1)[1]
  buckets = set()
  for pattern, bucket in _EGYPTIAN_PERIOD_NAMES:
    if re.search(pattern, text):
      buckets.add(bucket)
  for match in re.finditer(r"dynast(?:y|ies)\s+(\d+)(?:\s*[-\u2013]\s*(\d+))?", text):
    for number in filter(None, match.groups()):
      bucket = _dynasty_bucket(int(number))
      if bucket:
        buckets.add(bucket)
  # "X or later" stays X when nothing ancient comes after X (and "or earlier" before it).
  hedged = ((bool(re.search(r"\bor later\b", text)) and buckets != {"late"})
            or (bool(re.search(r"\bor earlier\b", text)) and buckets != {"early"}))
  return buckets, hedged


def period_from_years(culture: str, begin: float, end: float) -> str:
  """Period of a date range: the midpoint's bucket, '' if over a quarter lies outside it."""
  begin, end = min(begin, end), max(begin, end)
  mid = (begin + end) / 2
  for name, start, stop in PERIOD_BOUNDARIES[culture]:
    if start <= mid < stop:   # A point on a boundary belongs to the later period.
      length = end - begin
      if length > 0:
        inside = max(0.0, min(end, stop) - max(begin, start))
        if (length - inside) / length > MAX_OUTSIDE_SHARE:
          return ""
      return name
  return ""


def derive_period(culture: str, record: MuseumRecord, years: tuple[int, int] | None) -> str:
  if culture == "egyptian":
    names_text = " ; ".join(t for t in (record.period, record.culture) if t)
    buckets, hedged = egyptian_period_names(names_text)
    if len(buckets) == 1 and not hedged:
      return buckets.pop()
    if buckets:
      # Two buckets or "or later": only years in the same text can settle it.
      own_years = date_text.parse_date_text(names_text)
      return period_from_years(culture, *own_years) if own_years else ""
  if years is None:
    return ""
  return period_from_years(culture, *years)


# --- Culture and the whole record ---------------------------------------------------------


def _record_years(record: MuseumRecord) -> tuple[int, int] | None:
  """Years from the date text; the API's numeric years when the text has none."""
  years = date_text.parse_date_text(record.date_text)
  if years is None and record.begin_year is not None:
    end = record.end_year if record.end_year is not None else record.begin_year
    years = (min(record.begin_year, end), max(record.begin_year, end))
  return years


def _culture_from_text(record: MuseumRecord) -> tuple[str | None, str | None]:
  """(culture, drop reason) from the department, culture and place fields."""
  if (_EGYPTIAN_DEPARTMENT.search(record.department)
      and (record.museum == "met" or _EGYPT.search(record.culture + " " + record.place))):
    return "egyptian", None
  text = " ; ".join(t for t in (record.culture, record.place) if t)
  if not text:
    if _EGYPTIAN_DEPARTMENT.search(record.department):
      return None, "not Egyptian: no Egyptian culture in an Egyptian and Near Eastern department"
    return None, None
  other = _OTHER_CULTURE.search(text)
  if other:
    return None, f"not Egyptian/Greek/Roman: {other.group(0).lower()}"
  roman, greek = _ROMAN.search(text), _GREEK.search(text)
  if roman and greek:
    return None, "culture uncertain: both Greek and Roman named"
  if roman:
    return "roman", None
  if greek:
    return "greek", None
  if _EGYPT.search(text):
    return "egyptian", None
  if _EGYPTIAN_DEPARTMENT.search(record.department):
    return None, "not Egyptian: culture outside Egypt in an Egyptian and Near Eastern department"
  return None, None


def _culture_from_object(record: MuseumRecord, mid: float | None,
                         medium: str) -> tuple[str | None, str]:
  """README rules for Greek/Roman records without a culture field (AIC)."""
  texts = (record.title, record.object_name, record.medium)
  if _any(_ROMAN_COIN, *texts):
    return "roman", ""
  if _any(_GREEK_COIN, *texts) and mid is not None and mid < -31:
    return "greek", ""
  if _any(_GREEK_WARE, record.medium, record.title):
    return "greek", ""
  if _any(_CORE_FORMED_GLASS, record.medium, record.title):
    return None, "culture uncertain: core-formed/rod-formed/mosaic glass"
  if _any(_BLOWN_GLASS, record.medium):
    return "roman", ""
  if mid is not None and _MARBLE.search(record.medium or ""):
    return ("greek" if mid < -31 else "roman"), ""
  is_jewellery = bool(_any(_words(r"jewelry", r"jewellery", r"necklace", r"earring",
                                  r"ring", r"bracelet", r"pendant", r"cameo"), *texts))
  if mid is not None and mid >= -27 and (medium in ("sculpture", "architecture")
                                         or is_jewellery):
    return "roman", ""
  return None, "culture not determined"


def derive_labels(record: MuseumRecord) -> Labelled:
  """Labels of one record, or the reason it is dropped (see the module docstring)."""
  all_text = " ; ".join((record.title, record.object_name, record.classification))
  is_facsimile = bool(_any(_words(r"facsimile"), record.title, record.object_name))
  if not is_facsimile and _any(_DRAWING_OR_PHOTO, record.object_name, record.classification,
                               record.medium.split(",")[0] if record.medium else ""):
    return Labelled(drop_reason="post-antique: drawing, print or photograph")
  if _MODERN.search(all_text) or _MODERN.search(record.medium or ""):
    return Labelled(drop_reason="modern / forgery / cast")
  post = _any(_POST_ANTIQUE_PERIOD, record.period, record.culture, record.date_text)
  if post:
    return Labelled(drop_reason=f"post-antique period: {post.group(0).lower()}")

  years = _record_years(record)
  mid = date_text.midpoint(*years) if years else None
  medium = derive_medium(record)
  culture, reason = _culture_from_text(record)
  if culture is None and reason is None:
    culture, reason = _culture_from_object(record, mid, medium)
  if culture is None:
    return Labelled(drop_reason=reason)

  if culture == "egyptian":
    # Period names (facsimiles: the original's) can date an object whose years are modern.
    buckets, _ = egyptian_period_names(" ; ".join((record.period, record.culture)))
    too_late = mid is not None and mid >= END_OF_ANTIQUITY[culture] and not buckets
  else:
    too_late = mid is not None and mid >= END_OF_ANTIQUITY[culture]
    if mid is not None and mid < START_OF_SCOPE:
      return Labelled(drop_reason="Bronze Age or earlier: out of scope")
  if too_late:
    return Labelled(drop_reason=f"dated {END_OF_ANTIQUITY[culture]} CE or later (post-antique)")

  period = derive_period(culture, record, years)
  begin, end = years if years else (None, None)
  return Labelled(culture=culture, medium=medium, period=period, begin_year=begin,
                  end_year=end)
