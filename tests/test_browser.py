"""The page in a real headless Chromium, against the web process as the Procfile starts it
(gunicorn + gevent) and a real worker process: prompt, two platforms, Generate, live progress,
two images at their platforms' exact pixel sizes.

Needs Debian's `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver) and
the `selenium` package; skipped only when no Chromium binary exists.
"""

from __future__ import annotations

import shutil
import uuid

import pytest
import requests

from snapasset.auth import mint_access_token
from snapasset.platforms import PLATFORMS
from tests.conftest import wait_for

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary: apt-get install -y chromium "
                                                         "chromium-driver")
PICKED = ("instagram-post", "twitter-post")
# Chromium's own flags for a closed network and no screen (see the machine notes): no sandbox
# as root, no background traffic to Google's hosts.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1000")


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
    yield driver
    driver.quit()


def test_generate_two_platforms_in_a_real_browser(web_server, worker_process, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    base, settings = web_server
    worker_process()
    wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.2)
    token = mint_access_token(settings, str(uuid.uuid4()))

    browser.get(base + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(ready.presence_of_element_located((By.ID, f"platform-{PICKED[-1]}")))
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "prompt").send_keys("A lighthouse on a cliff at dawn, waves below")
    for platform_id in PICKED:
        box = browser.find_element(By.ID, f"platform-{platform_id}")
        box.click()
        assert box.is_selected()
    browser.find_element(By.ID, "submit").click()

    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#images img")) == len(PICKED)
               or d.find_element(By.ID, "job-error").text or d.find_element(By.ID, "form-error").text)
    assert not browser.find_element(By.ID, "form-error").text
    assert not browser.find_element(By.ID, "job-error").text
    wait.until(lambda d: d.find_element(By.ID, "stage").text.startswith("Done"))
    assert browser.find_element(By.ID, "progress").get_property("value") == 100
    assert browser.find_element(By.ID, "cancel").get_property("disabled") is True

    # each picture loaded, at its platform's exact size
    sizes = wait.until(lambda d: d.execute_script(
        "var imgs = document.querySelectorAll('#images img');"
        "if (!Array.prototype.every.call(imgs, function (i) { return i.complete && i.naturalWidth; })) return null;"
        "return Array.prototype.map.call(imgs, function (i) {"
        "  return [i.closest('li').dataset.platform, i.naturalWidth, i.naturalHeight]; });"))
    assert sorted(map(tuple, sizes)) == sorted((p, PLATFORMS[p].width, PLATFORMS[p].height) for p in PICKED)
    captions = [el.text for el in browser.find_elements(By.CSS_SELECTOR, "#images figcaption")]
    assert {PLATFORMS[p].name for p in PICKED} == {caption.split(" — ")[0] for caption in captions}

    # the token is remembered for the next visit, and the page logged no error on the way
    assert browser.execute_script("return localStorage.getItem('snapasset.token')") == token
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
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


def test_api_docs_list_every_operation_and_try_one(web_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = web_server
    document = requests.get(f"{base}/openapi.json", timeout=5).json()
    operations = sum(1 for item in document["paths"].values() for method in item
                     if method in {"get", "post", "put", "patch", "delete"})
    browser.get(base + "/api-docs")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "details.op")) == operations)

    browser.find_element(By.CSS_SELECTOR, "#listPlatforms > summary").click()
    browser.find_element(By.CSS_SELECTOR, "#listPlatforms button").click()
    output = wait.until(lambda d: "instagram-post" in (text := d.find_element(
        By.CSS_SELECTOR, "#listPlatforms pre").text) and text)
    assert output.startswith("200")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
