"""The console in a real browser: Debian's chromium driven by Selenium against a real server.

An operator logs in, finds a pushed multi-platform image through search,
opens its index and a child, reads sizes, platforms and the pull reference,
bulk-deletes two tags, and the registry's clients see them gone while the
others still pull. Each page is saved as a PNG in ``CROW_SCREENSHOTS``
(``docs/screenshots`` refreshes the README's), else in the test's own folder.
Without chromium, chromedriver or selenium the test is skipped, unless
``CROW_REQUIRE_CLIENTS=1`` (CI), where it fails.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from registry.console.formatting import human_size
from tests import consoleimages
from tests.server import ROOT, Server

NAME = "team/app"
PASSWORD = "console-operator-password"


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's styles and scripts, collected once, for the server to serve as ``make run`` does."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


@pytest.fixture
def webdriver(
    require_client: Callable[[str], str], require_module: Callable[[str], ModuleType]
) -> Iterator[Any]:
    chromium, chromedriver = require_client("chromium"), require_client("chromedriver")
    selenium = require_module("selenium.webdriver")
    options = selenium.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    # The driver is named: Selenium Manager would try to download one.
    driver = selenium.Chrome(options=options, service=selenium.ChromeService(executable_path=chromedriver))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server_env(static_root: Path) -> dict[str, str]:
    return {"CROW_STATIC_ROOT": str(static_root)}


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    configured = os.environ.get("CROW_SCREENSHOTS")
    folder = (ROOT / configured) if configured else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def follow(driver: Any, element: Any, keys: str = "") -> None:
    """Click ``element`` (or type ``keys`` into it) and wait for the page it leads to: until the old
    page is gone, a lookup can find the old page's elements and read them stale once it went."""
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    if keys:
        element.send_keys(keys)
    else:
        element.click()
    WebDriverWait(driver, 30).until(lambda _: _gone(page))


def _gone(element: Any) -> bool:
    """Whether ``element`` left the document: Selenium's ``staleness_of``, and chromedriver's other
    way of saying so while the new page replaces the old ("Node with given id does not belong to
    the document", a plain ``WebDriverException``; seen once in CI, 2026-11-29)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in (exc.msg or ""):
            return True
        raise
    return False


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def by_text(driver: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.LINK_TEXT, text)


def row_of(driver: Any, tag: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//table[@id='result_list']//tr[.//th/a[text()='{tag}']]")


def pulls(server: Server, session: requests.Session, reference: str) -> int:
    """Pull ``reference`` over /v2/: the manifest, and every child's and blob's bytes; the status."""
    accept = {"Accept": f"{consoleimages.oci.OCI_INDEX}, {consoleimages.oci.OCI_MANIFEST}"}
    response = session.get(f"{server.url}/v2/{NAME}/manifests/{reference}", headers=accept, timeout=30)
    if response.status_code != 200:
        return response.status_code
    document = response.json()
    for child in document.get("manifests", []):
        assert pulls(server, session, child["digest"]) == 200
    for blob in [document["config"], *document["layers"]] if "config" in document else []:
        fetched = session.get(f"{server.url}/v2/{NAME}/blobs/{blob['digest']}", timeout=30)
        assert fetched.status_code == 200 and len(fetched.content) == blob["size"]
    return 200


@pytest.mark.realserver
def test_an_operator_finds_an_image_and_deletes_two_tags(
    webdriver: Any, registry_server: Server, screenshots: Path
) -> None:
    server, driver = registry_server, webdriver
    session = server.session(NAME)
    multi = consoleimages.multi_platform("browser")
    single = consoleimages.platform_image("browser-single")
    consoleimages.http_push_multi_platform(session, server.url, NAME, multi, "1.0", "latest")
    consoleimages.http_push_image(session, server.url, NAME, single, "2.0", "edge")
    get_user_model().objects.create_superuser("operator", email="", password=PASSWORD)

    driver.get(f"{server.url}/")  # the front page leads to the console's login
    by_css(driver, "#id_username").send_keys("operator")
    by_css(driver, "#id_password").send_keys(PASSWORD)
    follow(driver, by_css(driver, "input[type=submit]"))
    assert "4" in by_css(driver, "#crow-dashboard").text  # tags
    driver.save_screenshot(str(screenshots / "dashboard.png"))

    follow(driver, by_text(driver, "Repositories"))
    follow(driver, by_css(driver, "#searchbar"), "app\n")
    driver.save_screenshot(str(screenshots / "repositories.png"))
    follow(driver, by_text(driver, NAME))
    assert by_css(driver, "h1").text == NAME
    latest = row_of(driver, "latest")
    assert "linux/amd64, linux/arm64/v8" in latest.text
    assert human_size(multi.image_size) in latest.text
    references = [field.get_attribute("value") for field in latest.find_elements("css selector", ".crow-ref")]
    assert references == [f"{server.host}/{NAME}:latest", f"{server.host}/{NAME}@{multi.index.digest}"]
    driver.save_screenshot(str(screenshots / "repository.png"))

    follow(driver, latest.find_element("css selector", ".field-digest a"))
    assert "linux/arm64/v8" in by_css(driver, "#content").text
    driver.save_screenshot(str(screenshots / "index.png"))
    child = multi.children[1]
    follow(driver, driver.find_element("xpath", "//tr[td[text()='linux/arm64/v8']]//a"))
    page = by_css(driver, "#content").text
    assert child.manifest.digest in page and "linux/arm64/v8" in page
    assert human_size(child.layers[0].size) in page and "/usr/bin/app" in page
    driver.save_screenshot(str(screenshots / "manifest.png"))

    follow(driver, by_css(driver, ".breadcrumbs a:nth-of-type(1)"))  # home
    follow(driver, by_text(driver, NAME))
    for tag in ("1.0", "2.0"):
        row_of(driver, tag).find_element("css selector", "input.action-select").click()
    from selenium.webdriver.support.ui import Select

    Select(by_css(driver, "select[name=action]")).select_by_value("delete_selected")
    follow(driver, by_css(driver, "button[name=index]"))
    doomed = by_css(driver, "#crow-doomed-tags").text
    assert f"{NAME}:1.0" in doomed and f"{NAME}:2.0" in doomed and "latest" not in doomed
    driver.save_screenshot(str(screenshots / "delete-tags.png"))
    follow(driver, by_css(driver, "input[type=submit]"))
    assert by_css(driver, "h1").text == NAME  # back on the repository's page
    assert "Successfully deleted 2 tags" in by_css(driver, ".messagelist").text
    driver.save_screenshot(str(screenshots / "after-delete.png"))

    assert pulls(server, session, "1.0") == 404
    assert pulls(server, session, "2.0") == 404
    assert pulls(server, session, "latest") == 200
    assert pulls(server, session, "edge") == 200
