"""The write controls in Chromium, on every front: upload through the file input and through a
synthetic drop (files, and a folder through the entries API), per-file progress, the new row
appears; a new folder by keyboard, rename and delete with their confirmations; a reader who may
not write sees none of it; at phone width nothing scrolls sideways; axe finds no serious problem."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.browser.conftest import axe_source
from tests.servers import serving

ROW_NAMES = """return Array.from(document.querySelectorAll('#listing tbody tr'))
    .filter((row) => row.cells.length === 3 && !row.classList.contains('up'))
    .map((row) => row.cells[0].querySelector('a').textContent.trim());"""
# progress bars as they change, kept across the reload that follows the uploads
WATCH_PROGRESS = """sessionStorage.setItem('seen', '[]');
    new MutationObserver(() => {
      const seen = JSON.parse(sessionStorage.getItem('seen'));
      for (const bar of document.querySelectorAll('#uploads progress')) seen.push([bar.value, bar.max]);
      sessionStorage.setItem('seen', JSON.stringify(seen));
    }).observe(document.getElementById('uploads'), {subtree: true, childList: true, attributes: true});"""


@pytest.fixture(scope="module")
def writable(front, tmp_path_factory):
    base = tmp_path_factory.mktemp("upload-site")
    root, cgi_dir = base / "root", base / "cgi-bin"
    (root / "inbox").mkdir(parents=True)
    (root / "readonly").mkdir()
    (root / "readonly" / "seen.txt").write_text("look, don't touch\n")
    cgi_dir.mkdir()
    os.chmod(base, 0o755)
    yield from serving(front, (root, cgi_dir), base / "logs", ["--write", "/inbox/*"])


@pytest.fixture
def folder(writable):
    """A fresh writable folder per test: /inbox/tN/."""
    name = f"t{time.monotonic_ns()}"
    (writable.root / "inbox" / name).mkdir()
    return f"/inbox/{name}/", writable.root / "inbox" / name


def wait_for(browser, script: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = browser.js(script)
        except Exception:  # noqa: BLE001 - the page is reloading
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never true: {script}")


def wait_for_row(browser, name: str) -> list[str]:
    return wait_for(browser, f"const names = (() => {{ {ROW_NAMES} }})();"
                             f"return names.includes({json.dumps(name)}) ? names : null;")


def test_upload_through_the_file_input(browser, writable, folder, tmp_path):
    url, path = folder
    local = tmp_path / "report été.bin"
    content = os.urandom(3 * 1024 * 1024)
    local.write_bytes(content)
    browser.open(writable.url + url)
    browser.js(WATCH_PROGRESS)
    browser.driver.find_element("id", "upload-input").send_keys(str(local))
    wait_for_row(browser, "report été.bin")
    assert (path / "report été.bin").read_bytes() == content
    # the list of uploads outlives the reload, each bar full
    done = browser.js("""return Array.from(document.querySelectorAll('#uploads li')).map((li) => [
        li.querySelector('.name').textContent, li.querySelector('.state').textContent,
        li.querySelector('progress').value, li.querySelector('progress').max]);""")
    assert done == [["report été.bin", "done", 1, 1]]
    seen = json.loads(browser.js("return sessionStorage.getItem('seen')"))
    assert any(maximum > 1_000_000 for _, maximum in seen), seen  # the bar followed the bytes sent


def test_upload_through_a_synthetic_drop(browser, writable, folder):
    url, path = folder
    browser.open(writable.url + url)
    browser.js("""const data = new DataTransfer();
        data.items.add(new File(['dropped one'], 'one.txt', {type: 'text/plain'}));
        data.items.add(new File(['dropped two'], 'two words.txt'));
        for (const type of ['dragenter', 'dragover', 'drop']) {
          const init = {dataTransfer: data, bubbles: true, cancelable: true};
          document.body.dispatchEvent(new DragEvent(type, init));
        }""")
    names = wait_for_row(browser, "two words.txt")
    assert "one.txt" in names
    assert (path / "one.txt").read_text() == "dropped one"
    assert (path / "two words.txt").read_text() == "dropped two"


def test_a_dropped_folder_keeps_its_tree(browser, writable, folder):
    """A folder arrives through the entries API, which scripts cannot fill: the drop event is
    given a stand-in with the same shape (a folder holding a file, a subfolder and a hidden file)."""
    url, path = folder
    browser.open(writable.url + url)
    browser.js("""const file = (name, text) => ({name, isFile: true, isDirectory: false,
          file: (ok) => ok(new File([text], name))});
        const dir = (name, children) => ({name, isFile: false, isDirectory: true, createReader: () => {
          let given = false;
          return {readEntries: (ok) => { ok(given ? [] : children); given = true; }};
        }});
        const album = dir('album', [file('a.txt', 'A'), file('.DS_Store', 'junk'),
                                    dir('inner', [file('b.txt', 'B')])]);
        const event = new Event('drop', {bubbles: true, cancelable: true});
        const data = {items: [{webkitGetAsEntry: () => album}], files: []};
        Object.defineProperty(event, 'dataTransfer', {value: data});
        document.body.dispatchEvent(event);""")
    wait_for_row(browser, "album/")
    assert (path / "album" / "a.txt").read_text() == "A"
    assert (path / "album" / "inner" / "b.txt").read_text() == "B"
    assert not (path / "album" / ".DS_Store").exists()


def test_new_folder_by_keyboard_then_rename_and_delete(browser, writable, folder):
    from selenium.webdriver.common.keys import Keys

    url, path = folder
    (path / "keep.txt").write_text("keep")
    browser.open(writable.url + url)
    box = browser.driver.find_element("id", "mkdir-name")
    box.send_keys("fresh", Keys.ENTER)
    wait_for_row(browser, "fresh/")
    assert (path / "fresh").is_dir()

    browser.driver.find_element("css selector", "button[aria-label='Rename fresh']").click()
    prompt = browser.driver.switch_to.alert
    prompt.send_keys("renamed")
    prompt.accept()
    wait_for_row(browser, "renamed/")
    assert (path / "renamed").is_dir() and not (path / "fresh").exists()

    browser.driver.find_element("css selector", "button[aria-label='Delete renamed']").click()
    browser.driver.switch_to.alert.dismiss()  # not confirmed: nothing happens
    time.sleep(0.5)
    assert (path / "renamed").is_dir()
    browser.driver.find_element("css selector", "button[aria-label='Delete renamed']").click()
    browser.driver.switch_to.alert.accept()
    wait_for(browser, f"const names = (() => {{ {ROW_NAMES} }})(); return !names.includes('renamed/');")
    assert not (path / "renamed").exists() and (path / "keep.txt").exists()


def test_readers_who_may_not_write_see_none_of_it(browser, writable):
    browser.open(writable.url + "/readonly/")
    assert browser.js("return document.getElementById('writes')") is None
    assert browser.js("return document.querySelectorAll('.row-acts').length") == 0
    assert browser.js("return document.querySelector('a[href=\"?download=zip\"]') !== null")


@pytest.mark.parametrize("width", [320, 390])
def test_the_controls_fit_a_phone(browser, writable, folder, width):
    url, path = folder
    (path / ("a-long-file-name-" * 8 + ".txt")).write_text("x")
    browser.open(writable.url + url, width, "dark")
    sizes = browser.js("""const root = document.documentElement;
        return {scroll: root.scrollWidth, client: root.clientWidth};""")
    assert sizes["scroll"] <= sizes["client"] == width, sizes
    for element in ("upload-input", "mkdir-name"):
        assert browser.driver.find_element("id", element).is_displayed()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_problem_on_a_writers_listing(browser, writable, folder, scheme, tmp_path):
    url, path = folder
    (path / "there.txt").write_text("x")
    browser.open(writable.url + url, 1280 if scheme == "light" else 390, scheme)
    local = tmp_path / "shown.txt"
    local.write_text("shown in the uploads list")
    browser.driver.find_element("id", "upload-input").send_keys(str(local))
    wait_for_row(browser, "shown.txt")
    browser.js(axe_source())
    results = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then((r) => done(JSON.stringify(r.violations)),"
        " (e) => done(JSON.stringify([{impact: 'critical', id: 'axe-error', help: String(e), nodes: []}])));")
    serious = [v for v in json.loads(results) if v["impact"] in ("serious", "critical")]
    assert not serious, "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at "
                                  f"{[n.get('target') for n in v['nodes'][:3]]}" for v in serious)


def test_without_script_the_form_uploads_and_comes_back(writable, folder):
    """The form itself (no script): a POST of the chosen files, 303 back to the listing."""
    url, path = folder
    page = writable.get(url).text
    assert 'enctype="multipart/form-data"' in page and 'name="file"' in page
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plain.txt\"\r\n\r\n"
            f"no script\r\n--{boundary}--\r\n").encode()
    reply = writable.request("POST", url, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    assert reply.status == 303 and reply.header("Location") == url
    assert Path(path / "plain.txt").read_text() == "no script"
