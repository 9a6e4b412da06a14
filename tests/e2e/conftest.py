"""End-to-end fixtures: Debian's chromium driven through its chromedriver (never a browser or
driver downloaded by selenium-manager: this machine reaches package registries only), and a loud
line in the terminal summary whenever the browser test could not run, so a CI log says why."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.events import REPOSITORY_ROOT

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

BUILD_DIR = REPOSITORY_ROOT / ".aws-sam" / "build"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMEDRIVER_CANDIDATES = ("chromedriver",)
DEBIAN_PATHS = {"chromium": Path("/usr/bin/chromium"), "chromedriver": Path("/usr/bin/chromedriver")}
INSTALL_HINT = (
    "`make test` installs them through its `browser` target (as root: "
    "`apt-get install -y chromium chromium-driver`); without root, install those two Debian packages first"
)
REQUIRE_BROWSER_ENV = "E2E_REQUIRE_BROWSER"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)

_SKIPPED_BROWSER_TESTS = pytest.StashKey[list[tuple[str, str]]]()


def _find(candidates: tuple[str, ...], debian_path: Path) -> Path | None:
    if debian_path.is_file() and os.access(debian_path, os.X_OK):
        return debian_path
    for name in candidates:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def browser_binaries() -> tuple[Path, Path] | str:
    """(chromium, chromedriver), or a sentence saying exactly which is missing and how to get it."""
    chromium = _find(CHROMIUM_CANDIDATES, DEBIAN_PATHS["chromium"])
    driver = _find(CHROMEDRIVER_CANDIDATES, DEBIAN_PATHS["chromedriver"])
    if chromium and driver:
        return chromium, driver
    missing = []
    if chromium is None:
        missing.append(f"chromium (Debian package `chromium`: no {DEBIAN_PATHS['chromium']}, none on PATH)")
    if driver is None:
        missing.append(
            f"chromedriver (Debian package `chromium-driver`: no {DEBIAN_PATHS['chromedriver']}, none on PATH)"
        )
    return f"browser test not run: missing {' and '.join(missing)}. {INSTALL_HINT}."


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    """A headless chromium for one test, with a fresh profile; quit afterwards whatever happens.
    Skips (loudly: see pytest_terminal_summary) when chromium or chromedriver is missing, or fails
    instead when $E2E_REQUIRE_BROWSER is 1."""
    binaries = browser_binaries()
    if isinstance(binaries, str):
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(f"{binaries} (${REQUIRE_BROWSER_ENV}=1 makes this a failure)", pytrace=False)
        request.config.stash.setdefault(_SKIPPED_BROWSER_TESTS, []).append((request.node.nodeid, binaries))
        pytest.skip(binaries)
    chromium, driver = binaries

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path_factory.getbasetemp()))
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager is never asked to find or download anything.
    service = Service(executable_path=str(driver), log_output=str(profile / "chromedriver.log"))
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def build_dir() -> Path:
    """`.aws-sam/build`, which the local stack runs the functions from (`make build` writes it)."""
    if not (BUILD_DIR / "template.yaml").is_file():
        pytest.fail(f"{BUILD_DIR} is missing: run `make build` first (`make test` does)", pytrace=False)
    return BUILD_DIR


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    skipped = config.stash.get(_SKIPPED_BROWSER_TESTS, [])
    if not skipped:
        return
    terminalreporter.section("BROWSER TEST NOT RUN", sep="!", red=True, bold=True)
    for nodeid, reason in skipped:
        terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}", red=True, bold=True)
