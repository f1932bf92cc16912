"""The page in a real headless Chromium, against the web process as the Procfile starts it
(gunicorn + gevent) and a real worker process, on a laptop screen (1280×800) and a phone screen
(390×844): used with the keyboard only, the button, progress, stage and errors in view without
scrolling, a live preview worth watching, images at their platforms' exact sizes, a download for
each and a zip of all, recent jobs to reopen, an estimate from real run times, and no violation
found by axe-core (vendored in tests/assets, so the check runs offline).

Needs Debian's `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver) and
the `selenium` package; skipped only when no Chromium binary exists. Screenshots of each step go
to $SNAPASSET_SCREENSHOTS when it is set (else to the test's temporary folder).
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image

from snapasset.auth import mint_access_token
from snapasset.config import Env
from snapasset.platforms import PLATFORMS
from tests.conftest import ROOT, wait_for

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary: apt-get install -y chromium "
                                                         "chromium-driver")
PICKED = ("instagram-post", "twitter-post")
PROMPT = "A lighthouse on a cliff at dawn, waves below"
# Chromium's own flags for a closed network and no screen (see the machine notes): no sandbox
# as root, no background traffic to Google's hosts.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1000")
SCREENS = {"laptop": (1280, 800), "phone": (390, 844)}
AXE = (ROOT / "tests" / "assets" / "axe.min.js").read_text()
# slow enough for the live preview to be seen (and photographed) while the model "draws"
MODEL_SECONDS = "3"


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    assert driver_path, "Chromium is installed but chromedriver is not: apt-get install -y chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path):
    folder = Path(os.environ.get("SNAPASSET_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def use_screen(driver, name: str) -> None:
    width, height = SCREENS[name]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def axe_violations(driver) -> list[dict]:
    """axe-core's violations on the page as it is now (every rule axe runs by default)."""
    driver.execute_script(AXE)
    found = driver.execute_async_script("""
        var done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]}).then(function (result) {
          done(result.violations.map(function (v) {
            return {id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(function (n) { return n.target.join(" "); })};
          }));
        }, function (error) { done([{id: "axe-error", help: String(error)}]); });""")
    return found


def out_of_view(driver, *element_ids: str) -> list[str]:
    """Those of the elements not wholly inside the viewport, with the page not scrolled."""
    return driver.execute_script("""
        if (window.scrollY !== 0) return ["page scrolled by " + window.scrollY];
        return Array.prototype.slice.call(arguments).filter(function (id) {
          var r = document.getElementById(id).getBoundingClientRect();
          return !(r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth);
        });""", *element_ids)


def tab_to(driver, element_id: str, *, back: bool = False, limit: int = 40) -> None:
    """Press Tab (Shift+Tab with `back`) until the element has the focus, as a keyboard user would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        if driver.switch_to.active_element.get_attribute("id") == element_id:
            return
        # keys to the page, not to the element: on a file input, send_keys would mean "upload"
        keys = ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT) if back \
            else ActionChains(driver).send_keys(Keys.TAB)
        keys.perform()
    raise AssertionError(f"{'Shift+' if back else ''}Tab never reached #{element_id}")


def press(driver, key: str) -> None:
    driver.switch_to.active_element.send_keys(key)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_the_page_with_the_keyboard_only(screen, web_server, worker_process, browser, screenshots, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, settings = web_server
    worker_process({Env.LOCAL_LATENCY: MODEL_SECONDS})
    wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.2)
    token = mint_access_token(settings, str(uuid.uuid4()))
    wait = WebDriverWait(browser, 60)
    text = lambda element_id: browser.find_element(By.ID, element_id).text   # noqa: E731

    use_screen(browser, screen)
    browser.get(base + "/")
    wait.until(lambda d: d.find_elements(By.ID, f"platform-{PICKED[-1]}"))
    assert browser.execute_script("return [innerWidth, innerHeight]") == list(SCREENS[screen])
    assert (violations := axe_violations(browser)) == [], violations

    # keyboard only: token, prompt, Generate with no platform → the error shows by the button
    tab_to(browser, "token")
    press(browser, token)
    tab_to(browser, "prompt")
    press(browser, PROMPT)
    tab_to(browser, "submit")
    press(browser, Keys.ENTER)
    wait.until(lambda d: text("form-error") == "Pick at least one platform.")
    browser.save_screenshot(str(screenshots / f"{screen}-1-form-error.png"))
    assert out_of_view(browser, "submit", "form-error", "progress", "stage") == []
    assert browser.switch_to.active_element.get_attribute("id") == f"platform-{next(iter(PLATFORMS))}"

    for platform_id in PICKED:
        tab_to(browser, f"platform-{platform_id}")
        press(browser, Keys.SPACE)
    assert [b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, "#platform-list input:checked")] \
        == list(PICKED)

    # the server's refusal (a token from another deployment) shows in the same place, saying what to do
    tab_to(browser, "token", back=True)
    press(browser, Keys.CONTROL + "a")
    press(browser, mint_access_token(settings.replace(jwt_secret="another-deployments-secret-0123456789abcdef"), "x"))
    tab_to(browser, "submit")
    press(browser, Keys.ENTER)
    wait.until(lambda d: text("form-error").endswith("Paste a valid access token above."))
    assert out_of_view(browser, "submit", "form-error", "stage") == []
    tab_to(browser, "token", back=True)
    press(browser, Keys.CONTROL + "a")
    press(browser, token)
    tab_to(browser, "submit")
    press(browser, Keys.ENTER)

    # while the model draws: progress, stage and a live preview, all in view on the first screen
    wait.until(lambda d: d.find_element(By.ID, "preview-box").is_displayed())
    browser.save_screenshot(str(screenshots / f"{screen}-2-drawing.png"))
    assert not text("form-error") and not text("job-error")
    assert out_of_view(browser, "submit", "progress", "stage", "estimate") == []
    assert text("stage").startswith("Generating")
    assert "so far" in text("estimate") and "30" not in text("estimate")
    if screen == "laptop":
        width = browser.execute_script("return document.getElementById('preview').getBoundingClientRect().width")
        assert width >= 320, f"the live preview is {width} px wide"
        assert browser.execute_script("return document.getElementById('preview').naturalWidth") >= 320

    wait.until(lambda d: text("stage").startswith("Done") or text("job-error"))
    browser.save_screenshot(str(screenshots / f"{screen}-3-done.png"))
    assert text("stage") == "Done: 2 images." and not text("job-error")
    assert browser.find_element(By.ID, "progress").get_property("value") == 100
    assert browser.find_element(By.ID, "cancel").get_property("disabled") is True
    assert text("estimate").startswith("Took ")

    # each picture loaded at its platform's exact size, each with its own download link
    sizes = wait.until(lambda d: d.execute_script(
        "var imgs = document.querySelectorAll('#images img');"
        "if (!Array.prototype.every.call(imgs, function (i) { return i.complete && i.naturalWidth; })) return null;"
        "return Array.prototype.map.call(imgs, function (i) {"
        "  return [i.closest('li').dataset.platform, i.naturalWidth, i.naturalHeight]; });"))
    assert sorted(map(tuple, sizes)) == sorted((p, PLATFORMS[p].width, PLATFORMS[p].height) for p in PICKED)
    links = browser.find_elements(By.CSS_SELECTOR, "#images a[download]")
    assert sorted(link.get_attribute("download") for link in links) == sorted(
        f"{p}-{PLATFORMS[p].width}x{PLATFORMS[p].height}.jpg" for p in PICKED)
    for link in links:
        assert requests.get(link.get_attribute("href"), timeout=10).headers["Content-Type"] == "image/jpeg"
    assert (violations := axe_violations(browser)) == [], violations

    # "Download all" gives one zip of both images, made in the browser
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    tab_to(browser, "download-all")
    press(browser, Keys.ENTER)
    archive = wait_for(lambda: next((p for p in downloads.glob("gen-*.zip")), None), timeout=30)
    wait_for(lambda: not list(downloads.glob("*.crdownload")), timeout=30)
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == sorted(link.get_attribute("download") for link in links)
        for name in bundle.namelist():
            platform = PLATFORMS[name.rsplit("-", 1)[0]]
            assert Image.open(io.BytesIO(bundle.read(name))).size == (platform.width, platform.height)

    # the next visit: the token is remembered, the job is in "Your recent jobs" and reopens
    browser.get(base + "/")
    recent = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recent-list button"))
    assert len(recent) == 1 and "completed" in recent[0].text
    assert browser.find_element(By.ID, "token").get_property("value") == token
    assert not browser.find_elements(By.CSS_SELECTOR, "#images li")
    tab_to(browser, "recent-refresh")
    press(browser, Keys.TAB)   # from Refresh to the job's button
    assert browser.switch_to.active_element.get_attribute("data-job-id")
    press(browser, Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#images img")) == len(PICKED))
    assert text("stage") == "Reopened: completed, 2 images."
    assert browser.find_element(By.ID, "prompt").get_property("value") == PROMPT
    assert [b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, "#platform-list input:checked")] \
        == list(PICKED)

    # run it again: the estimate comes from the first job's real run time
    tab_to(browser, "submit")
    press(browser, Keys.ENTER)
    wait.until(lambda d: "recent jobs took about" in text("estimate"))
    wait.until(lambda d: text("stage").startswith("Done"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#recent-list button")) == 2

    # nothing went wrong but the 401s provoked with the wrong token (Chromium logs each refusal)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
              and not (entry["source"] == "network" and "status of 401" in entry["message"])]
    assert not errors, errors


def test_a_whole_picture_story_in_avif_shows_in_the_browser(web_server, worker_process, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, settings = web_server
    worker_process()
    wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.2)
    browser.get(base + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(ready.presence_of_element_located((By.ID, "platform-instagram-story")))
    browser.find_element(By.ID, "token").send_keys(mint_access_token(settings, str(uuid.uuid4())))
    browser.find_element(By.ID, "prompt").send_keys("A red bicycle on the left of a city street")
    browser.find_element(By.ID, "platform-instagram-story").click()
    Select(browser.find_element(By.ID, "format")).select_by_value("avif")
    Select(browser.find_element(By.ID, "fit")).select_by_value("contain")
    browser.find_element(By.ID, "submit").click()

    size = wait.until(lambda d: d.execute_script(
        "var i = document.querySelector('#images img');"
        "return i && i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;"))
    assert size == [1080, 1920]   # Chromium decoded the AVIF at the story's size
    assert "AVIF" in browser.find_element(By.CSS_SELECTOR, "#images figcaption").text
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_api_docs_list_every_operation_render_markdown_and_try_one(web_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = web_server
    document = requests.get(f"{base}/openapi.json", timeout=5).json()
    operations = sum(1 for item in document["paths"].values() for method in item
                     if method in {"get", "post", "put", "patch", "delete"})
    browser.get(base + "/api-docs")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "details.op")) == operations)

    # descriptions are Markdown: code spans become <code>, no backtick is left on the page
    assert browser.find_elements(By.CSS_SELECTOR, "#operations .markdown code")
    assert "`" not in browser.find_element(By.ID, "operations").text
    assert "`" not in browser.find_element(By.ID, "doc-summary").text

    browser.find_element(By.CSS_SELECTOR, "#listPlatforms > summary").click()
    browser.find_element(By.CSS_SELECTOR, "#listPlatforms button").click()
    output = wait.until(lambda d: "instagram-post" in (text := d.find_element(
        By.CSS_SELECTOR, "#listPlatforms pre").text) and text)
    assert output.startswith("200")
    assert (violations := axe_violations(browser)) == [], violations
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


CROSS_ORIGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>another origin</title>
<script>
window.outcome = {events: [], status: null, remaining: null, error: null};
fetch(%(api)s + "/api/jobs", {method: "POST",
      headers: {"Authorization": "Bearer " + %(token)s, "Content-Type": "application/json"},
      body: JSON.stringify({prompt: "A hot air balloon over a green valley", platforms: ["og-image"]})})
  .then(function (r) {
    window.outcome.status = r.status;
    window.outcome.remaining = r.headers.get("X-RateLimit-Remaining");
    return r.json();
  })
  .then(function (job) {
    var source = new EventSource(job.streamUrl);
    source.onmessage = function (message) {
      var event = JSON.parse(message.data);
      window.outcome.events.push(event.type);
      if (event.type === "done") source.close();
    };
    source.onerror = function () { if (source.readyState === 2) window.outcome.error = "stream closed"; };
  })
  .catch(function (e) { window.outcome.error = String(e); });
</script>"""


def test_a_page_on_another_origin_creates_a_job_and_follows_it_live(web_server, worker_process, browser):
    """The preflight (Authorization + JSON ask for one), the exposed rate-limit header and a
    cross-origin EventSource, from a page served on another port (development allows local origins)."""
    import json

    from selenium.webdriver.support.ui import WebDriverWait

    from tests.stubs._server import Reply, StubServer

    base, settings = web_server
    worker_process()
    wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.2)
    html = CROSS_ORIGIN_PAGE % {"api": json.dumps(base),
                                "token": json.dumps(mint_access_token(settings, str(uuid.uuid4())))}

    class Page(StubServer):
        def respond(self, request):
            return Reply(headers={"Content-Type": "text/html; charset=utf-8"}, body=html.encode())

    with Page.start() as page:
        assert page.url.rsplit(":", 1)[1] != base.rsplit(":", 1)[1]
        browser.get(page.url + "/")
        outcome = WebDriverWait(browser, 60).until(lambda d: (o := d.execute_script("return window.outcome"))
                                                   and ("done" in o["events"] or o["error"]) and o)
    assert outcome["error"] is None, outcome
    assert outcome["status"] == 201
    assert outcome["remaining"] is not None and int(outcome["remaining"]) >= 0
    assert outcome["events"][0] == "connected" and outcome["events"][-1] == "done"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_the_page_offers_model_variants_and_a_reference_picture(web_server, worker_process, browser, tmp_path):
    import io

    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, settings = web_server
    worker_process()
    wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.2)
    reference = tmp_path / "product.png"
    Image.new("RGB", (300, 200), (255, 0, 255)).save(reference)

    browser.get(base + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_elements(By.ID, "platform-og-image"))
    browser.find_element(By.ID, "token").send_keys(mint_access_token(settings, str(uuid.uuid4())))
    browser.find_element(By.ID, "prompt").send_keys("A red rocket launching at night over a city")
    browser.find_element(By.ID, "platform-og-image").click()
    browser.find_element(By.CSS_SELECTOR, "#more-options > summary").click()
    assert [o.text for o in Select(browser.find_element(By.ID, "model")).options] == list(settings.image_models)
    variants = browser.find_element(By.ID, "variants")
    variants.clear()
    variants.send_keys("2")
    browser.find_element(By.ID, "reference").send_keys(str(reference))
    browser.find_element(By.ID, "submit").click()

    wait.until(lambda d: d.find_element(By.ID, "stage").text.startswith("Done")
               or d.find_element(By.ID, "job-error").text or d.find_element(By.ID, "form-error").text)
    assert not browser.find_element(By.ID, "form-error").text and not browser.find_element(By.ID, "job-error").text
    items = browser.find_elements(By.CSS_SELECTOR, "#images li")
    assert sorted(item.get_attribute("data-key") for item in items) == ["og-image/0", "og-image/1"]
    for url in (item.find_element(By.TAG_NAME, "a").get_attribute("href") for item in items):
        with Image.open(io.BytesIO(requests.get(url, timeout=10).content)) as picture:
            centre = picture.convert("RGB").getpixel((picture.width // 2, round(picture.height * 0.52)))
        # the reference, worked into each variant (JPEG: within a few levels)
        assert max(abs(a - b) for a, b in zip(centre, (255, 0, 255))) <= 8, (url, centre)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
