"""Browser fixtures: one headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
for the whole session, the behaviour suite's `server` on every front, and a site with the pages a
person would look at (a 200-character name, a deep path, READMEs, files of every kind).

Every test skips with the reason when Chromium, its driver or Selenium is missing. A failing test
leaves a screenshot in tests/browser/failures/ and names it in its report.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.behaviour import site
from tests.behaviour.conftest import front, server  # noqa: F401 - the per-front fixtures, reused
from tests.servers import REPO

CHROMIUM = os.environ.get("CGIBOX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CGIBOX_CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_JS = Path(os.environ.get("CGIBOX_AXE_JS", REPO / "tests/browser/node_modules/axe-core/axe.min.js"))
FAILURES = REPO / "tests/browser/failures"
WIDTHS = (390, 1280)
SCHEMES = ("light", "dark")
PHONE_HEIGHT, DESKTOP_HEIGHT = 844, 800
# a fixed time for the showcase folder, so the README's screenshots do not change from run to run
SHOWCASE_MTIME = 1_764_590_400  # 2025-12-01 12:00 UTC

LONG_NAME = ("long-file-name-" * 14)[:196] + ".txt"  # 200 characters, no space to break at
DEEP_SEGMENTS = [f"level-{n:02d}-of-a-rather-deep-folder-path" for n in range(1, 9)]
DEEP_PATH = "/pages/deep/" + "/".join(DEEP_SEGMENTS) + "/"
README_MD = """# Pages for the browser tests

This README is rendered under the listing. A [kept link](n2.txt) and some `code`.

<script>document.title = "raw HTML ran"</script>

| column | another |
|---|---|
| cell | cell |
"""


def _missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install chromium chromium-driver; missing: {package})"
    return None


def build_pages(root: Path) -> None:
    """The folders the browser tests open, beside the behaviour suite's tree."""
    pages = root / "pages"
    pages.mkdir()
    (pages / "README.md").write_text(README_MD)
    (pages / LONG_NAME).write_text("long\n")
    for name in ("n1.txt", "n2.txt", "n10.txt"):
        (pages / name).write_text(name + "\n")
    (pages / "big.bin").write_bytes(b"\0" * 5000)
    (pages / "tiny.txt").write_text("t")
    (pages / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (pages / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (pages / "clip.mp4").write_bytes(bytes(300))
    (pages / "tool.py").write_text("print('hi')\n")
    (pages / "sub").mkdir()
    deep = pages / "deep" / Path(*DEEP_SEGMENTS)
    deep.mkdir(parents=True)
    (deep / LONG_NAME).write_text("deep and long\n")
    text = pages / "plain-readme"
    text.mkdir()
    (text / "README.txt").write_text("A plain README: <b>not bold</b>\n" + "x" * 300 + "\n")
    build_showcase(root / "showcase")


def build_showcase(folder: Path) -> None:
    """A folder that looks like a real one, for the README's screenshots."""
    folder.mkdir()
    for name in ("docs", "photos", "releases"):
        (folder / name).mkdir()
    files = {"README.md": "# Project files\n\nEverything for the **spring release**: builds in `releases/`, "
                          "notes below, slides in [talk.mp4](talk.mp4).\n\n- `notes-2.txt` comes before "
                          "`notes-10.txt`\n- type in the box above to filter\n",
             "notes-2.txt": "n" * 1_800, "notes-10.txt": "n" * 2_400, "budget.csv": "a,b\n" * 900,
             "main.py": "print('hello')\n" * 80, "site.tar.gz": b"\x1f\x8b" + bytes(48_000),
             "cover.jpg": bytes(230_000), "talk.mp4": bytes(1_900_000), "LICENSE": "MIT\n" * 300}
    for offset, (name, content) in enumerate(files.items()):
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.utime(path, (SHOWCASE_MTIME - offset * 86_400, SHOWCASE_MTIME - offset * 86_400))
    for offset, name in enumerate(("docs", "photos", "releases")):
        os.utime(folder / name, (SHOWCASE_MTIME - offset * 3_600,) * 2)


@pytest.fixture(scope="session")
def site_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """The behaviour suite's tree plus build_pages(); the `server` fixture serves this one."""
    root, cgi_dir = site.build(tmp_path_factory.mktemp("browser-site"))
    build_pages(root)
    return root, cgi_dir


@dataclass
class Browser:
    """The session's one Chromium, with the page size and colour scheme set per call."""

    driver: object

    def open(self, url: str, width: int = 1280, scheme: str = "light") -> None:
        mobile = width < 600
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": PHONE_HEIGHT if mobile else DESKTOP_HEIGHT,
            "deviceScaleFactor": 1, "mobile": mobile})
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture(scope="session")
def browser():
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    # no speculative connections: an idle one would hold a gunicorn sync worker until its timeout
    options.add_experimental_option("prefs", {"net.network_prediction_options": 2})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    # the same clock and language on every machine: the screenshots and the time texts are stable
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})
    driver.execute_cdp_cmd("Emulation.setLocaleOverride", {"locale": "en-GB"})
    # the reader's languages too (navigator.languages, which the listing's times follow)
    driver.execute_cdp_cmd("Emulation.setUserAgentOverride", {
        "userAgent": driver.execute_script("return navigator.userAgent"), "acceptLanguage": "en-GB,en"})
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        browser = item.funcargs.get("browser")
        if isinstance(browser, Browser):
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid.split("::")[-1])
            try:
                path = browser.screenshot(FAILURES / f"{name}-{int(time.time())}.png")
            except Exception as error:  # noqa: BLE001 - a dead browser must not hide the failure
                report.sections.append(("browser screenshot", f"none could be taken: {error}"))
            else:
                report.sections.append(("browser screenshot", f"saved to {path}"))
    return report


def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.skip(f"axe-core not found at {AXE_JS} (npm install --prefix tests/browser --no-package-lock)")
    return AXE_JS.read_text("utf-8")


def have_docs_screenshots_wanted() -> bool:
    """CGIBOX_SCREENSHOTS=docs makes the screenshot test write README's pictures under docs/."""
    return os.environ.get("CGIBOX_SCREENSHOTS") == "docs"


def copy_to_docs(path: Path, name: str) -> None:
    target = REPO / "docs" / "screenshots" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
