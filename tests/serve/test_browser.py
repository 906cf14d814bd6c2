"""End to end in a real headless browser: Debian's Chromium driven by Playwright.

Loads the page from a real uvicorn server, uploads two photos (one with markup in its
name) and a text file, checks the labels shown against `artclf.predict`, drops a photo
and fetches one by URL, looks at the Grad-CAM overlays, corrects one label and downloads
the CSV. Skips, saying why, where
Playwright or the system Chromium is missing (`apt-get install chromium`; Playwright's
own browser download is never used). With ARTCLF_SCREENSHOT=PATH it also saves the
page there (the README's picture: docs/images/serve.png).
"""

import base64
import csv
import io
import os
import pathlib
import re
import shutil

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install -e .[app])")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install -e .[app])")

import artclf  # noqa: E402
from artclf.serve import app as app_lib  # noqa: E402
from artclf.serve import predict  # noqa: E402
from artclf import scheme as scheme_lib
from configs import serve as serve_config  # noqa: E402
from tests.serve.live_server import serve_in_thread  # noqa: E402

CHROMIUM = os.environ.get("ARTCLF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Quiet on a closed network: no background requests, updates or sync.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
XSS_NAME = "<img src=x onerror=window.__xss=1>.png"

pytestmark = pytest.mark.skipif(
    not pathlib.Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ARTCLF_CHROMIUM)")


def amphora() -> bytes:
  picture = Image.new("RGB", (240, 300), (236, 226, 205))
  draw = ImageDraw.Draw(picture)
  draw.ellipse((50, 70, 190, 260), fill=(176, 90, 48))
  draw.rectangle((100, 30, 140, 90), fill=(176, 90, 48))
  draw.rectangle((60, 150, 180, 175), fill=(30, 24, 20))
  buffer = io.BytesIO()
  picture.save(buffer, "JPEG", quality=90)
  return buffer.getvalue()


def temple() -> bytes:
  picture = Image.new("RGB", (320, 220), (170, 200, 230))
  draw = ImageDraw.Draw(picture)
  draw.polygon([(30, 80), (160, 20), (290, 80)], fill=(235, 230, 215))
  for x in range(45, 280, 45):
    draw.rectangle((x, 85, x + 18, 190), fill=(240, 236, 224))
  draw.rectangle((25, 190, 295, 205), fill=(220, 214, 198))
  buffer = io.BytesIO()
  picture.save(buffer, "PNG")
  return buffer.getvalue()


@pytest.fixture(scope="module")
def base_url(served_workdir):
  settings = serve_config.get_config()
  settings.url_allow_private_hosts = True  # the test's image server is on loopback
  # As `python -m artclf.serve` starts: the model loaded, compiled and Grad-CAM warmed up.
  with serve_in_thread(app_lib.load_app(served_workdir, settings)) as url:
    yield url


@pytest.fixture(scope="module")
def browser():
  with sync_api.sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def check_row_shows(row, expected: dict):
  for task in scheme_lib.DEFAULT.tasks:
    cell = row.locator(f"td[data-task={task}]")
    assert cell.locator("select").input_value() == expected[task]["label"]
    assert float(cell.get_attribute("data-probability")) == pytest.approx(expected[task]["probability"], abs=1e-6)
    shown = cell.locator(".predicted").inner_text()
    assert shown == f"{expected[task]['label']} {expected[task]['probability'] * 100:.0f}%"
    ranked = sorted(expected[task]["distribution"].items(), key=lambda kv: -kv[1])
    assert cell.locator(".runner-up").inner_text().startswith(f"runner-up: {ranked[1][0]} ")


DROP_FILE = """png => {
  const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
  document.getElementById("drop-zone").dispatchEvent(
      new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def open_page(browser, base_url):
  """The page, loaded, and the list its script errors and policy violations go to."""
  page = browser.new_page(viewport={"width": 1180, "height": 900}, accept_downloads=True)
  problems = []
  page.on("console", lambda message: message.type == "error" and problems.append(message.text))
  page.on("pageerror", lambda error: problems.append(str(error)))
  page.goto(base_url)
  sync_api.expect(page.locator("#model-info")).to_contain_text("tiny trunk")
  return page, problems


def pick_files(page, photos: dict):
  files = [{"name": name, "mimeType": mime, "buffer": data} for name, (mime, data) in photos.items()]
  files.append({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"})
  page.set_input_files("#file-input", files)
  sync_api.expect(page.locator("tr.done")).to_have_count(len(photos))
  sync_api.expect(page.locator("tr.error")).to_have_count(1)
  sync_api.expect(page.locator("#progress-section")).to_be_hidden()
  assert page.locator("#progress-text").text_content() == f"Classifying: {len(files)} of {len(files)} done"
  assert "unknown or broken image format" in page.locator("tr.error").inner_text()
  return {name: page.locator("tr.done").filter(has=page.locator(".name", has_text=name))
          for name in photos}


def drop_and_fetch(page, image_server):
  """A photo dropped on the page, and one fetched from a URL, join the batch."""
  before = page.locator("tr.done").count()
  page.evaluate(DROP_FILE, base64.b64encode(temple()).decode())
  page.fill("#url-input", f"{image_server}/photo.jpg")
  page.click("#url-form button")
  sync_api.expect(page.locator("tr.done")).to_have_count(before + 2)
  for name in ("dropped.png", "photo.jpg"):
    sync_api.expect(page.locator("tr.done .name", has_text=name)).to_have_count(1)


def correct_and_explain(page, row, task: str, label: str):
  row.locator(f"td[data-task={task}] select").select_option(label)
  sync_api.expect(row.locator(f"td[data-task={task}]")).to_have_class(re.compile(r"\bcorrected\b"))  # maybe also "low"
  sync_api.expect(page.locator("#batch-summary")).to_contain_text("1 corrected")
  row.locator(".explain-button").click()
  sync_api.expect(page.locator("tr.explain-row figure img")).to_have_count(len(scheme_lib.DEFAULT.tasks))
  page.wait_for_function("[...document.querySelectorAll('tr.explain-row img')].every(i => i.naturalWidth > 0)")


def download_csv(page) -> dict[str, dict]:
  with page.expect_download() as download_info:
    page.click("#export-button")
  download = download_info.value
  assert download.suggested_filename == "artclf_batch.csv"
  text = pathlib.Path(download.path()).read_text()
  return {row["image"]: row for row in csv.DictReader(io.StringIO(text))}


def test_classify_correct_and_export_a_batch(browser, base_url, served_workdir, image_server,
                                              tmp_path):
  photos = {"amphora.jpg": ("image/jpeg", amphora()), XSS_NAME: ("image/png", temple())}
  model = predict.load_model(served_workdir)
  expected = {name: artclf.predict(data, model=model)  # the uploaded bytes, as the server reads them
              for name, (_, data) in photos.items()}
  page, problems = open_page(browser, base_url)
  rows = pick_files(page, photos)
  for name, row in rows.items():
    assert row.locator(".name").inner_text() == name  # the markup in the name stays text
    check_row_shows(row, expected[name])
  assert page.evaluate("window.__xss") is None
  drop_and_fetch(page, image_server)
  model_label = expected["amphora.jpg"]["culture"]["label"]
  corrected = next(c for c in scheme_lib.DEFAULT.classes["culture"] if c != model_label)
  correct_and_explain(page, rows["amphora.jpg"], "culture", corrected)

  table = download_csv(page)
  assert set(table) == set(photos) | {"dropped.png", "photo.jpg"}  # not the refused file
  assert table["photo.jpg"]["source_url"] == f"{image_server}/photo.jpg"
  amphora_row = table["amphora.jpg"]
  assert (amphora_row["culture"], amphora_row["predicted_culture"]) == (corrected, model_label)
  assert amphora_row["corrected"] == "culture"
  for task in scheme_lib.DEFAULT.tasks:
    assert table[XSS_NAME][task] == expected[XSS_NAME][task]["label"]
    assert float(table[XSS_NAME][f"{task}_probability"]) == pytest.approx(
        expected[XSS_NAME][task]["probability"], abs=1e-6)

  screenshot = os.environ.get("ARTCLF_SCREENSHOT") or tmp_path / "serve.png"
  page.screenshot(path=str(screenshot), full_page=True)
  # No script error and no policy violation; the one refused upload (422) is expected.
  assert [p for p in problems if "status of 422" not in p] == []
  page.close()
