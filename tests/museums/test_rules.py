"""Tests of the labelling rules and date parsing on real-looking museum records."""

import pytest

from artclf.museums import date_text, rules
from artclf.museums.record import MuseumRecord


def met_egypt(title, object_name="", period="", date="", **kw):
  return MuseumRecord(museum="met", object_id="MET_1", title=title, object_name=object_name,
                      department="Egyptian Art", period=period, date_text=date, **kw)


def met_gr(title, culture, date, object_name="", medium="", **kw):
  return MuseumRecord(museum="met", object_id="MET_2", title=title, object_name=object_name,
                      department="Greek and Roman Art", culture=culture, date_text=date,
                      medium=medium, **kw)


def cle(title, culture, date, type_="Sculpture", technique="",
        department="Egyptian and Ancient Near Eastern Art"):
  return MuseumRecord(museum="cle", object_id="CLE_3", title=title, classification=type_,
                      department=department, culture=culture, date_text=date,
                      medium=technique)


def aic(title, date, place="", medium="", type_="", style=""):
  return MuseumRecord(museum="aic", object_id="CHI_4", title=title, classification=type_,
                      department="Arts of the Ancient Mediterranean and Byzantium",
                      culture=style, place=place, medium=medium, date_text=date)


# (record, culture, medium, period)
KEPT = [
    # Egyptian: period names first, dynasties, facsimiles, hedged and mixed texts.
    (met_egypt("Statue of Tjeteti in middle age", "Statue", "Old Kingdom"),
     "egyptian", "sculpture", "early"),
    (met_egypt("Upper half of a woman from a pair or group statue", "", "Late Middle Kingdom"),
     "egyptian", "sculpture", "middle"),
    (met_egypt("Falcon amulet", "Amulet, falcon", "Third Intermediate Period"),
     "egyptian", "", "late"),
    (met_egypt("Bastet holding aegis and basket", "Bastet, standing, aegis",
               "Late Period (Saite)–Ptolemaic Period"), "egyptian", "sculpture", "late"),
    (met_egypt("Detail of a Desert Animal, Tomb of Khnumhotep", "Facsimile",
               "Twentieth Century; original Middle Kingdom", "1931"),
     "egyptian", "painting", "middle"),
    (met_egypt("Relief block from the tomb of Sebeknakht", "Relief, tomb of Sebeknakht",
               "Middle Kingdom"), "egyptian", "architecture", "middle"),
    (met_egypt("Talatat with a royal hand", "Talatat, Royal hand", "New Kingdom, Amarna Period"),
     "egyptian", "architecture", "middle"),
    (met_egypt("Model of a trussed ox", "Model, ox", "Middle Kingdom"),
     "egyptian", "sculpture", "middle"),
    (met_egypt("Model sieve", "Model, sieve", "Middle Kingdom"), "egyptian", "", "middle"),
    (met_egypt("Model Boat", "Model, boat", "Middle Kingdom"), "egyptian", "", "middle"),
    (met_egypt("Canopic jar of Nebet", "Canopic jar", "Dynasty 21"), "egyptian", "", "late"),
    (met_egypt("Shabti of Henettawy", "Shabti", "Dynasty 21"), "egyptian", "sculpture", "late"),
    (met_egypt("Head of a king", "Head", "First Intermediate Period–Middle Kingdom"),
     "egyptian", "sculpture", ""),
    (met_egypt("Statuette of a Hippo Goddess", "Statuette", "New Kingdom or later"),
     "egyptian", "sculpture", ""),
    (met_egypt("Statuette of a Hippo Goddess", "Statuette", "Late Period or later"),
     "egyptian", "sculpture", "late"),
    (met_egypt("Portrait of a Young Woman in Red", "Portrait", "Roman Period",
               "A.D. 90–120", medium="Encaustic on limewood"),
     "egyptian", "painting", "late"),
    (met_egypt("Stela of the Steward Mentuwoser", "Stela", "", "ca. 1944 B.C."),
     "egyptian", "sculpture", "middle"),
    (cle("Fragment of a Lintel: Hapiu's Female Musicians", "Egypt, Late Period, Dynasty 30",
         "380–343 BCE"), "egyptian", "architecture", "late"),
    (cle("Tray with Pond Scene", "Egypt", "1540–1296 BCE", "Cosmetic Objects"),
     "egyptian", "", "middle"),
    (cle("False Door of Nykara", "Egypt", "2408–2341 BCE"), "egyptian", "architecture", "early"),
    (cle("Seal Amulet", "Egypt", "2300–2124 BCE", "Amulets"), "egyptian", "", "early"),
    (cle("Portrait of a Man", "Egypt, Roman Period", "c. 138-92 CE", "Painting",
         "encaustic on wood"), "egyptian", "painting", "late"),
    (cle("Statue of a Woman", "Egypt", "664-30 BCE OR 664-330 BCE"),
     "egyptian", "sculpture", "late"),
    # Greek: boundaries, straddles, vases, coins.
    (aic("Column-Krater (Mixing Bowl)", "about 480 BCE", "Athens",
         "Terracotta, decorated in the red-figure technique", "Vessel"),
     "greek", "painting", "middle"),  # A point on 480 BCE belongs to the later period.
    (aic("Pelike (Storage Jar)", "about 510-500 BCE", "Athens",
         "Terracotta, decorated in the black-figure technique", "Vessel"),
     "greek", "painting", "early"),
    (aic("Statuette of a Seated Girl", "330-320 BCE", "Greece", "Terracotta", "Sculpture"),
     "greek", "sculpture", ""),  # 3 of 10 years Hellenistic: straddles.
    (aic("Amphora (Storage Jar)", "4th century BCE", "South Italy, Apulia",
         "Terracotta, Gnathia ware", "Vessel"), "greek", "painting", "middle"),  # 22% out.
    (aic("Kantharos (Wine Cup)", "310-280 BCE", "Greece", "Terracotta, black-glaze",
         "Vessel"), "greek", "", "late"),
    (aic("Tetradrachm (Coin) Portraying Alexander the Great", "336-323 BCE", "",
         "Silver", "Coin"), "greek", "", "middle"),
    (aic("Pyxis (Container for Personal Objects)", "late 6th century BCE", "Corinth",
         "Terracotta, black-figure", "Vessel"), "greek", "painting", "early"),
    (met_gr("Marble head of Athena", "Greek", "ca. 300–250 B.C.", "Head", "Marble"),
     "greek", "sculpture", "late"),
    (met_gr("Marble lekythos (oil flask)", "Greek, Attic", "ca. 375–350 B.C.", "Lekythos",
            "Marble"), "greek", "sculpture", "middle"),
    # Roman.
    (aic("Denarius (Coin) Portraying Emperor Hadrian", "125-128 CE", "", "Silver", "Coin"),
     "roman", "", "middle"),
    (aic("Bowl or Cup", "Late 1st-early 2nd century CE", "", "Glass, mold-blown", "Vessel"),
     "roman", "", "middle"),
    (aic("Necklace with Pendant", "2nd-3rd century", "Roman Empire", "Gold", "Jewelry"),
     "roman", "", ""),  # 101-300 CE: a third after 235 CE, straddles.
    (aic("Mosaic Fragment with a Hunter", "5th century", "Roman Empire", "Stone tesserae",
         "Mosaic"), "roman", "painting", "late"),  # 24% after 476: still late.
    (aic("Portrait Head of a Man", "130-40", "", "Marble", "Sculpture"),
     "roman", "sculpture", "middle"),  # Abbreviated end year: 130-140 CE.
    (met_gr("Marble portrait of the emperor Caracalla", "Roman", "ca. A.D. 212–217",
            "Head, portrait", "Marble"), "roman", "sculpture", "middle"),
    (met_gr("Column capital", "Roman", "2nd century A.D.", "Capital", "Marble"),
     "roman", "architecture", "middle"),
    (met_gr("Campana relief plaque", "Roman", "1st century A.D.", "Plaque", "Terracotta"),
     "roman", "architecture", "middle"),
    (met_gr("Bronze coin of Constantine", "Roman", "A.D. 330", "Coin", "Bronze"),
     "roman", "", "late"),
    (met_gr("Fragment of a wall painting", "Roman", "mid-1st century B.C.", "Wall painting",
            "Fresco"), "roman", "painting", "early"),
    (met_gr("Marble statue of a youth", "Roman, Republican", "late 2nd century B.C.",
            "Statue", "Marble"), "roman", "sculpture", "early"),
]


@pytest.mark.parametrize("record,culture,medium,period", KEPT,
                         ids=[r[0].title[:40] for r in KEPT])
def test_kept_records(record, culture, medium, period):
  result = rules.derive_labels(record)
  assert result.kept, result.drop_reason
  assert (result.culture, result.medium, result.period) == (culture, medium, period)


# (record, start of the drop reason)
DROPPED = [
    (met_gr("Bronze statuette of a warrior", "Etruscan", "ca. 500 B.C.", "Statuette"),
     "not Egyptian/Greek/Roman: etruscan"),
    (met_gr("Marble female figure", "Cycladic", "ca. 2700 B.C.", "Figure"),
     "not Egyptian/Greek/Roman: cycladic"),
    (met_gr("Limestone head of a man", "Cypriot", "ca. 550 B.C.", "Head"),
     "not Egyptian/Greek/Roman: cypriot"),
    (met_gr("Statuette of Dionysos", "Hellenistic or Roman", "2nd century B.C.–1st century A.D.",
            "Statuette"), "culture uncertain"),
    (met_egypt("Tunic with dancers", "Tunic", "Coptic", "5th–6th century"),
     "post-antique period: coptic"),
    (met_egypt("Relief with a saint", "Relief", "", "A.D. 500–600"), "dated 400 CE or later"),
    (cle("Portrait of a Man", "Roman Empire", "AD 500–600", department="Greek and Roman Art"),
     "dated 476 CE or later"),
    (cle("Head of a Bull", "Iran, Achaemenid", "500s BCE"), "not Egyptian"),
    (cle("Qur'an Leaf", "Egypt, Mamluk period", "1300s"), "post-antique period: mamluk"),
    (cle("Forgery of a Ka Statue", "Egypt", "1900s"), "modern / forgery"),
    (aic("Mosaic Fragment with Man Leading a Giraffe", "401-500 CE", "Tyre",
         "Stone tesserae", "Mosaic", style="Byzantine"), "post-antique period: byzantine"),
    (aic("Drawing of a Greek Vase", "1850", "", "Graphite on paper", "Drawing"),
     "post-antique: drawing"),
    (aic("Vase in the Shape of a Bird", "100-500 CE", "Peru", "Ceramic", "Vessel"),
     "not Egyptian/Greek/Roman: peru"),
    (aic("Alabastron (Container for Scented Oil)", "6th-5th century BCE", "",
         "Glass, core-formed", "Vessel"), "culture uncertain: core-formed"),
    (aic("Bowl", "1st century", "", "Terracotta", "Vessel"), "culture not determined"),
    (aic("Seated Figure", "about 2500 BCE", "Greece", "Marble", "Sculpture"),
     "Bronze Age or earlier"),
    (aic("Plate with Saint George", "1500", "Italy", "Majolica", "Vessel"),
     "culture not determined"),
]


@pytest.mark.parametrize("record,reason", DROPPED, ids=[r[0].title[:40] for r in DROPPED])
def test_dropped_records(record, reason):
  result = rules.derive_labels(record)
  assert not result.kept
  assert result.drop_reason.startswith(reason), result.drop_reason


def test_api_years_used_when_the_text_has_none():
  record = MuseumRecord(museum="met", object_id="MET_5", title="Statue of a man",
                        department="Egyptian Art", date_text="", begin_year=-1390,
                        end_year=-1352)
  result = rules.derive_labels(record)
  assert (result.period, result.begin_year, result.end_year) == ("middle", -1390, -1352)


@pytest.mark.parametrize("culture,begin,end,period", [
    ("greek", -480, -480, "middle"),   # Boundary point: the later period.
    ("greek", -481, -481, "early"),
    ("greek", -323, -323, "late"),
    ("greek", -31, -31, ""),           # After Hellenistic: no Greek period.
    ("roman", -27, -27, "middle"),
    ("roman", 235, 235, "late"),
    ("roman", 101, 300, ""),           # 2nd-3rd century: 33% after 235.
    ("roman", 401, 500, "late"),       # 5th century: 24% after 476.
    ("egyptian", -2030, -2030, "middle"),
    ("egyptian", -1070, -1070, "late"),
    ("egyptian", -1391, -1353, "middle"),
    ("egyptian", -2100, -1900, ""),    # 70 of 200 years before 2030 BCE.
])
def test_period_from_years(culture, begin, end, period):
  assert rules.period_from_years(culture, begin, end) == period


@pytest.mark.parametrize("text,years", [
    ("c. 1391–1353 BCE", (-1391, -1353)),
    ("ca. 1479–1458 B.C.", (-1479, -1458)),
    ("about 460 BCE", (-460, -460)),
    ("AD 150–200", (150, 200)),
    ("A.D. 90–120", (90, 120)),
    ("30 B.C.–A.D. 14", (-30, 14)),
    ("130-40", (130, 140)),
    ("c. 1805-7", (1805, 1807)),
    ("c. 138-92 CE", (138, 192)),
    ("664-30 BCE OR 664-330 BCE", (-664, -30)),
    ("late 6th century BCE", (-534, -501)),
    ("late 6th-early 3rd century BCE", (-534, -267)),
    ("Mid 1st century BCE-mid 1st century CE", (-67, 67)),
    ("2nd-3rd century", (101, 300)),
    ("1st century", (1, 100)),
    ("4th century BCE", (-400, -301)),
    ("Late 1st-early 2nd century CE", (67, 134)),
    ("end of the 6th century B.C.", (-521, -501)),
    ("first half of the 4th century B.C.", (-400, -350)),
    ("4th millennium BCE", (-4000, -3001)),
    ("Dynasty 18, ca. 1390 B.C.", (-1390, -1390)),
    ("Late Period", None),
    ("", None),
    (None, None),
])
def test_parse_date_text(text, years):
  assert date_text.parse_date_text(text) == years
