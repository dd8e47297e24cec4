#!/usr/bin/python3
"""Drives Debian's headless Chromium through fanout-web's jobs page, as an operator would.

Opens the jobs page, chooses a 2-second refresh, waits until the job's progress moves by itself
while a worker sends, turns the refresh off, clicks Cancel, accepts the confirmation and waits
until the page shows the job cancelled; saves screenshots of the jobs page and the job page.
Prints one JSON line with what it saw; exits 1 (with the reason) when a step does not happen.

Run with Debian's /usr/bin/python3 (python3-selenium, chromium, chromium-driver).
"""
import argparse
import base64
import json
import os
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

IGNORED = (NoSuchElementException, StaleElementReferenceException)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="fanout-web's base URL")
    parser.add_argument("--job", required=True, help="the email job to watch and cancel")
    parser.add_argument("--screenshots", required=True, help="folder for jobs.png and job.png")
    parser.add_argument("--user", help="sign in with this user (FANOUT_WEB_USER)")
    parser.add_argument("--password", help="and this password")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="fanout-chromium-")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1500,900", "--user-data-dir=" + profile):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    seen = {}
    try:
        if args.user:
            # What the browser's sign-in dialog would send once the operator typed it.
            credentials = base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + credentials}})
        wait = WebDriverWait(driver, 90, poll_frequency=0.2, ignored_exceptions=IGNORED)
        row = "job-email-" + args.job

        def progress(d=driver):
            return d.find_element(By.CSS_SELECTOR, "#%s .progress-text" % row).text

        driver.get(args.url + "/")
        seen["first"] = wait.until(lambda d: progress(d))
        wait.until(lambda d: Select(d.find_element(By.ID, "refresh")).select_by_value("2") or True)
        # No click from here: the page reloads itself while the job runs.
        wait.until(lambda d: progress(d) != seen["first"])
        seen["moved"] = progress()
        driver.save_screenshot(os.path.join(args.screenshots, "jobs.png"))
        # Refresh off, so the page stays put for the click.
        wait.until(lambda d: Select(d.find_element(By.ID, "refresh")).select_by_value("0") or True)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#%s form[action$='/cancel'] button" % row).click()
                   or True)
        WebDriverWait(driver, 20).until(expected_conditions.alert_is_present())
        alert = driver.switch_to.alert
        seen["confirmation"] = alert.text
        alert.accept()
        wait.until(lambda d: d.find_element(By.ID, row).get_attribute("data-status") == "cancelled")
        seen["status"] = "cancelled"
        driver.get("%s/jobs/email/%s" % (args.url, args.job))
        seen["job_page"] = driver.find_element(By.TAG_NAME, "h1").text
        driver.save_screenshot(os.path.join(args.screenshots, "job.png"))
    except TimeoutException:
        seen["error"] = "timed out; steps done: %s" % (", ".join(seen) or "none")
    finally:
        driver.quit()
    print(json.dumps(seen))
    return 1 if "error" in seen else 0


if __name__ == "__main__":
    sys.exit(main())
