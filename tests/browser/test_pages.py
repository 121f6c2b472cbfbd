"""The pages in a real browser, on every front: at 390 and 1280 px, light and dark, nothing scrolls
sideways; the filter box, the sort links, the README and the times work; no request for a missing
favicon; axe-core finds no serious or critical accessibility problem."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.behaviour.site_cgi import NOT_EXECUTABLE
from tests.browser.conftest import (
    DEEP_PATH,
    LONG_NAME,
    SCHEMES,
    WIDTHS,
    axe_source,
    copy_to_docs,
    have_docs_screenshots_wanted,
)

PAGES = {
    "listing": "/pages/",
    "deep-listing": DEEP_PATH,
    "404": "/no/such/page.html",
    "403": f"/cgi-bin/{NOT_EXECUTABLE}",
    "stats": "/stats",
    "form-sample": "/cgi-bin/form.py",
    "headers-sample": "/cgi-bin/headers",
}
VISIBLE_NAMES = """return Array.from(document.querySelectorAll('#listing tbody tr'))
    .filter((row) => row.offsetParent !== null && !row.classList.contains('up') && row.id !== 'nomatch')
    .map((row) => row.cells[0].textContent.trim());"""


def overflow(browser) -> dict:
    return browser.js("""const root = document.documentElement;
        return {scroll: root.scrollWidth, client: root.clientWidth, inner: window.innerWidth};""")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_no_horizontal_overflow(browser, server, page, width, scheme):
    browser.open(server.url + PAGES[page], width, scheme)
    sizes = overflow(browser)
    assert sizes["inner"] == width, f"{page}: laid out {sizes['inner']} px wide (no viewport meta?)"
    assert sizes["scroll"] <= sizes["client"], f"{page} scrolls sideways at {width} px ({scheme}): {sizes}"
    background = browser.js("return getComputedStyle(document.body).backgroundColor")
    dark = [int(v) for v in re.findall(r"\d+", background)[:3]]
    assert (sum(dark) < 150) == (scheme == "dark"), f"{page}: background {background} in {scheme} mode"


@pytest.mark.parametrize("page", ["listing", "deep-listing"])
def test_listings_fit_the_narrowest_phones(browser, server, page):
    browser.open(server.url + PAGES[page], 320, "dark")
    sizes = overflow(browser)
    assert sizes["scroll"] <= sizes["client"] == 320, sizes


def test_long_names_and_deep_paths_wrap_beside_their_icon(browser, server):
    browser.open(server.url + DEEP_PATH, 390, "light")
    link = browser.driver.find_element("link text", LONG_NAME)
    icon = browser.js("return arguments[0].parentElement.querySelector('svg').getBoundingClientRect()", link)
    text = browser.js("return arguments[0].getBoundingClientRect()", link)
    assert text["height"] > 3 * icon["height"]  # the name wraps over several lines...
    assert abs(icon["top"] - text["top"]) < icon["height"]  # ...and its icon stays on the first
    crumbs = browser.js("return document.querySelector('h1.crumbs').getBoundingClientRect()")
    assert crumbs["right"] <= 390


def test_filter_box_hides_and_shows_rows(browser, server):
    browser.open(server.url + "/pages/")
    everything = browser.js(VISIBLE_NAMES)
    box = browser.driver.find_element("id", "filter")
    assert box.is_displayed()
    box.send_keys("N1")
    assert browser.js(VISIBLE_NAMES) == ["n1.txt", "n10.txt"]
    assert "2 of" in browser.driver.find_element("id", "shown").text
    box.send_keys("zzz")
    assert browser.js(VISIBLE_NAMES) == []
    assert browser.driver.find_element("id", "nomatch").is_displayed()
    box.send_keys("\ue00c")  # Escape clears the filter
    assert browser.js(VISIBLE_NAMES) == everything


def test_keyboard_slash_focuses_the_filter_and_focus_is_visible(browser, server):
    browser.open(server.url + "/pages/")
    body = browser.driver.find_element("tag name", "body")
    body.send_keys("/")
    assert browser.js("return document.activeElement.id") == "filter"
    browser.driver.find_element("id", "filter").send_keys("\ue004")  # Tab to the first sort link
    focused = browser.js("""const el = document.activeElement, style = getComputedStyle(el);
        return {tag: el.tagName, outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};""")
    assert focused["tag"] == "A" and focused["outline"] != "none" and focused["width"] >= 1


def test_sort_links_reorder(browser, server):
    browser.open(server.url + "/pages/")
    names = browser.js(VISIBLE_NAMES)
    assert names.index("n2.txt") < names.index("n10.txt")  # natural order
    assert names[:3] == ["deep/", "plain-readme/", "sub/"]  # folders first
    browser.driver.find_element("link text", "Size").click()  # the first click: largest first
    by_size = browser.js(VISIBLE_NAMES)
    assert browser.driver.current_url.endswith("?sort=size&order=desc")
    assert by_size[3] == "big.bin" and by_size[-1] == "tiny.txt"
    browser.driver.find_element("partial link text", "Size").click()
    assert browser.js(VISIBLE_NAMES)[3] == "tiny.txt"
    browser.driver.find_element("link text", "Modified").click()  # the first click: newest first
    assert browser.driver.current_url.endswith("?sort=mtime&order=desc")
    browser.driver.find_element("partial link text", "Name").click()
    assert browser.js(VISIBLE_NAMES) == names


def test_readme_shows_under_the_listing(browser, server):
    browser.open(server.url + "/pages/")
    section = browser.driver.find_element("css selector", "section.readme")
    assert section.is_displayed() and "README.md" in section.text
    assert section.find_element("tag name", "h1").text == "Pages for the browser tests"
    assert section.find_element("link text", "kept link").get_attribute("href").endswith("/pages/n2.txt")
    assert "<script>" in section.text  # raw HTML is text, never markup
    assert browser.driver.title != "raw HTML ran"
    assert browser.js("return document.querySelector('#listing').getBoundingClientRect().bottom") <= \
        browser.js("return arguments[0].getBoundingClientRect().top", section)
    browser.open(server.url + "/pages/plain-readme/", 390)
    pre = browser.driver.find_element("css selector", "section.readme pre")
    assert "<b>not bold</b>" in pre.text
    assert overflow(browser)["scroll"] <= 390


def test_times_are_local_with_the_exact_time_as_a_tooltip(browser, server):
    browser.open(server.url + "/pages/", 1280)
    first = browser.driver.find_element("css selector", "#listing tbody time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z", first.get_attribute("datetime"))
    assert re.search(r"\d{4}.*\d\d:\d\d.*(UTC|GMT)", first.get_attribute("title"))
    assert re.search(r"\d\d:\d\d", first.text)  # date and time on a wide screen
    browser.open(server.url + "/pages/", 390)
    first = browser.driver.find_element("css selector", "#listing tbody time")
    assert first.is_displayed() and first.text and not re.search(r"\d\d:\d\d", first.text)  # the date alone


def test_no_request_for_a_missing_favicon(browser, server):
    browser.open(server.url + "/pages/")
    browser.open(server.url + "/stats")
    deadline = time.monotonic() + 10
    while "/favicon.ico" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in server.log().splitlines() if "/favicon.ico" in line]
    assert lines, "the browser never asked for /favicon.ico"
    assert all(re.search(r'" (200|304) ', line) for line in lines), lines


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("page", ["listing", "404", "stats", "form-sample", "headers-sample"])
def test_axe_finds_no_serious_problem(browser, server, page, scheme):
    source = axe_source()
    browser.open(server.url + PAGES[page], 1280 if scheme == "light" else 390, scheme)
    browser.js(source)
    results = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then((r) => done(JSON.stringify(r.violations)),"
        " (e) => done(JSON.stringify([{impact: 'critical', id: 'axe-error', help: String(e), nodes: []}])));")
    serious = [v for v in json.loads(results) if v["impact"] in ("serious", "critical")]
    assert not serious, "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at "
                                  f"{[n.get('target') for n in v['nodes'][:3]]}" for v in serious)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_listing_screenshots(browser, server, scheme, tmp_path):
    """The README's pictures: the showcase folder at 1280 px; CGIBOX_SCREENSHOTS=docs writes them
    to docs/screenshots/ (from the first front only)."""
    browser.open(server.url + "/showcase/", 1280, scheme)
    assert browser.driver.find_element("css selector", "section.readme").is_displayed()
    path = browser.screenshot(tmp_path / f"listing-{scheme}.png")
    assert path.stat().st_size > 10_000
    if have_docs_screenshots_wanted() and server.front == "threading":
        copy_to_docs(path, f"listing-{scheme}.png")


# -- issue 24 A5 ---------------------------------------------------------------------------------

COLUMNS = """return Array.from(document.querySelectorAll('#listing thead th')).map((th) => {
    const box = th.getBoundingClientRect(); return [Math.round(box.left), Math.round(box.width)]; });"""


@pytest.mark.parametrize("width", WIDTHS)
def test_columns_do_not_jump_when_the_filter_matches_nothing(browser, server, width):
    browser.open(server.url + "/pages/", width)
    before = browser.js(COLUMNS)
    browser.driver.find_element("id", "filter").send_keys("zzz-no-such-name")
    assert browser.js(VISIBLE_NAMES) == []
    assert browser.js(COLUMNS) == before


def test_readme_headings_do_not_look_like_the_cards_title_bar(browser, server):
    # beside /pages/ (whose folders the sort test counts), shared by every front's server
    folder = server.root / "readme-sections"
    folder.mkdir(exist_ok=True)
    (folder / "README.md").write_text("# Title\n\n## A section\n\nText.\n\n### Smaller\n")
    browser.open(server.url + "/readme-sections/")
    style = """const el = document.querySelector(arguments[0]), s = getComputedStyle(el);
        return {bg: s.backgroundColor, border: s.borderBottomStyle, display: s.display,
                pad: s.paddingLeft};"""
    bar = browser.js(style, ".readme > h2")
    heading = browser.js(style, ".readme-body h2")
    assert bar["border"] != "none" and bar["display"] == "flex"
    assert heading["bg"] in ("rgba(0, 0, 0, 0)", "transparent") and heading["border"] == "none"
    assert heading["display"] == "block" and heading["pad"] == "0px"


def test_the_401_page_shows_its_reason_plainly_and_links_no_locked_page(browser, server):
    """Rendered from the server's own 401 page (a real 401 would raise the browser's login prompt)."""
    from cgibox.core.errors import error_response
    from cgibox.core.templates import Templates

    page = error_response(Templates(None), None, 401, "This server needs a login.").body
    html = page.decode() if isinstance(page, bytes) else ""
    assert html
    browser.open(server.url + "/pages/")
    browser.js("document.open(); document.write(arguments[0]); document.close();", html)
    colours = browser.js("""const body = getComputedStyle(document.body).color;
        return [getComputedStyle(document.querySelector('.detail')).color, body];""")
    assert colours[0] == colours[1]  # not greyed out
    assert browser.js("return document.querySelectorAll('main a[href=\"/\"]').length") == 0
    assert "This server needs a login." in browser.driver.find_element("css selector", ".detail").text


def test_times_follow_the_readers_languages(browser, server):
    """A reader whose languages put German first gets 16:26, not "04:26 PM" (the UI's locale)."""
    agent = browser.js("return navigator.userAgent")
    try:
        browser.driver.execute_cdp_cmd("Emulation.setLocaleOverride", {"locale": "en-US"})
        for languages, twelve_hours in (("de-DE,de", False), ("en-US,en", True)):
            browser.driver.execute_cdp_cmd("Emulation.setUserAgentOverride",
                                           {"userAgent": agent, "acceptLanguage": languages})
            browser.open(server.url + "/pages/", 1280)
            text = browser.driver.find_element("css selector", "#listing tbody time").text
            assert bool(re.search(r"[AP]M", text)) is twelve_hours, (languages, text)
            if not twelve_hours:
                assert re.search(r"\b\d\d:\d\d$", text), text
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setLocaleOverride", {"locale": "en-GB"})
        browser.driver.execute_cdp_cmd("Emulation.setUserAgentOverride",
                                       {"userAgent": agent, "acceptLanguage": "en-GB,en"})
