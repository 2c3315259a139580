"""The demo page at `/` in a real headless browser (Debian's chromium): text in, entities
highlighted as displaCy draws them, a score on hover, the latency shown."""

import os
import shutil

import pytest

from .conftest import API_KEY

# Every test here starts the service and a headless browser.
pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: Where to save a screenshot of the page (the README's docs/serve-demo.png came from here).
SCREENSHOT = os.environ.get("BERT_NER_DEMO_SCREENSHOT")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        # CI installs them (.ci/run), so there the test must run; elsewhere say what it needs.
        problem = "needs Debian's chromium and chromium-driver (apt-get install ...)"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1000,600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_text_in_highlighted_entities_out(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/")
    text = browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys("angela merkel met macron in paris and berlin")
    browser.find_element(By.ID, "key").send_keys(API_KEY)
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 60).until(ready.text_to_be_present_in_element((By.ID, "status"), " ms"))
    marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
    assert marks, browser.find_element(By.ID, "status").text
    assert {mark.get_attribute("data-label") for mark in marks} <= {"PER", "LOC"}
    assert all("score 0." in mark.get_attribute("title") for mark in marks)
    shown = browser.find_element(By.ID, "result").text
    for word in ("angela", "merkel", "macron", "paris", "berlin"):
        assert word in shown  # every word of the text is still on the page
    status = browser.find_element(By.ID, "status").text
    assert status.endswith(" ms") and f"{len(marks)} entities" in status
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)


def test_a_wrong_key_is_shown_not_crashed_on(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/")
    browser.find_element(By.ID, "key").send_keys("wrong")
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 60).until(ready.text_to_be_present_in_element((By.ID, "status"), "401"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#result mark")
