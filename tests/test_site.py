"""The built book reads well offline and on a phone, checked in a real headless Chromium.

Every chapter page (and index.html) is opened from disk through file://, as an offline reader
would, in a 390 px wide window: MathJax (bundled with the site, no CDN) must have typeset every
formula, every image must have loaded, and no table, code block, figure or equation may stick out
of the page or be clipped. Page titles and navigation links must not carry raw LaTeX.

The book is built once per session by the `book_build` fixture in conftest.py, shared with
tests/test_book.py. PGX_SITE_HTML=path/to/_build/html runs these checks on an existing build
instead (no build, no chapter execution).

Needs Debian's chromium and chromium-driver (`bash .ci/install` installs them) and selenium:
without them these tests fail in CI (CI=true) and are skipped elsewhere.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)  # CSS pixels: a current phone in portrait

pytestmark = pytest.mark.slow

if os.environ.get("PGX_SITE_HTML"):
    PAGES = ["index.html", *sorted(p.relative_to(os.environ["PGX_SITE_HTML"]).as_posix() for p in Path(os.environ["PGX_SITE_HTML"], "book").glob("*.html"))]
else:
    PAGES = ["index.html", *(f"book/{c.stem}.html" for c in sorted((ROOT / "book").glob("[0-9][0-9]_*.py")))]


@pytest.fixture(scope="module")
def html(request):
    if os.environ.get("PGX_SITE_HTML"):
        path = Path(os.environ["PGX_SITE_HTML"]).resolve()
    else:
        path = request.getfixturevalue("book_build").html
    if not (path / "index.html").exists():
        pytest.fail(f"no built book at {path} (see test_book.py::test_book_builds_without_warnings)")
    return path


def _unavailable(msg):
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        how = "`bash .ci/install` installs them (apt-get install chromium chromium-driver)"
        if not shutil.which("apt-get"):
            how = "apt-get is not available here to install them: install Debian's chromium and chromium-driver"
        _unavailable(f"the browser checks need {' and '.join(missing)}; {how}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("the browser checks need selenium: pip install -r requirements.txt")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={PHONE[0]},{PHONE[1]}",
                 # Offline, as the reader may be: a page that needs a CDN fails here.
                 "--host-resolver-rules=MAP * ~NOTFOUND",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit chromedriver: Selenium Manager is never asked to download anything.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    # Desktop Chromium will not make a window narrower than about 500 px: emulate the phone's screen.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 3, "mobile": True})
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# Runs in the page once it has loaded: waits for MathJax and the images, then measures.
INSPECT = r"""
const done = arguments[arguments.length - 1];
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const report = {url: location.href};
  const shown = (el) => el.getClientRects().length > 0;
  const describe = (el) => `<${el.tagName.toLowerCase()}${el.className && typeof el.className === "string" ? ` class="${el.className}"` : ""}>`;

  // MathJax: Sphinx wraps every formula in span.math / div.math, MathJax puts an mjx-container in it.
  report.mathjaxScripts = [...document.scripts].map((s) => s.src).filter((s) => /mathjax/i.test(s));
  if (report.mathjaxScripts.length) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 20000) await sleep(50);
    try {
      if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) throw new Error("MathJax never started");
      await MathJax.startup.promise;
      report.mathjax = "ok";
    } catch (e) {
      report.mathjax = String(e);
    }
  }
  const formulas = [...document.querySelectorAll(".math")];
  report.formulas = formulas.length;
  report.unrendered = formulas.filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.trim().slice(0, 100));
  report.mathErrors = [...document.querySelectorAll("mjx-merror")].map((el) => el.getAttribute("data-mjx-error") || el.textContent);
  // Visible prose (not code) that still shows TeX delimiters.
  const raw = /\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/;
  const skip = "script, style, pre, code, textarea, mjx-container, .highlight";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  report.rawTex = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (el && !el.closest(skip) && shown(el) && raw.test(n.textContent)) report.rawTex.push(n.textContent.trim().slice(0, 100));
  }

  // Images, lazy ones included.
  const images = [...document.images];
  images.forEach((img) => { if (img.loading === "lazy") img.loading = "eager"; });
  await Promise.all(images.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 15000);
  })));
  report.images = images.length;
  report.brokenImages = images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.getAttribute("src"));
  await document.fonts.ready;
  report.fontErrors = [...document.fonts].filter((f) => f.status === "error").map((f) => f.family);

  // Phone width: nothing may widen the page, and whatever is wider than the screen must scroll
  // inside a box that fits it, not stick out of the page or be cut off. Reports the outermost
  // element that is too wide, and what it sticks out of.
  window.scrollTo(0, 0);
  const vw = document.documentElement.clientWidth;
  report.viewport = vw;
  report.scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  report.tooWide = [];
  const main = document.querySelector("main") || document.body;
  const reported = new Set();
  const items = [...document.body.querySelectorAll("*")].map((el) => [el, el, el.getBoundingClientRect()]);
  const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = texts.nextNode(); n; n = texts.nextNode()) {  // a long unbreakable word overflows its <p>
    if (!n.parentElement || !n.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    items.push([n, n.parentElement, range.getBoundingClientRect()]);
  }
  for (const [node, el, r] of items) {
    if (r.width === 0 || r.right <= vw + 1 || !shown(el) || getComputedStyle(el).visibility === "hidden") continue;
    // A formula is measured as a whole; MathJax's hidden copy for screen readers is clipped on purpose.
    if (el.closest("script, style, mjx-assistive-mml") || (el.tagName !== "MJX-CONTAINER" && el.closest("mjx-container"))) continue;
    // The nearest box that scrolls or clips it: for an element one of its ancestors, for text its
    // own element or an ancestor.
    let box = null, fixed = getComputedStyle(el).position === "fixed";
    for (let a = node === el ? el.parentElement : el; a && a !== document.body && !fixed; a = a.parentElement) {
      const style = getComputedStyle(a);
      fixed = style.position === "fixed";
      if (!box && style.overflowX !== "visible") box = a;
    }
    if (fixed) continue;  // drawers (the sidebars on a phone) wait off screen, and do not widen the page
    let problem;
    if (!box) problem = "makes the page scroll sideways";
    else {
      const rb = box.getBoundingClientRect();
      if (rb.right > vw + 1 || rb.width === 0) continue;  // the box itself is reported, if it matters
      const ox = getComputedStyle(box).overflowX;
      if (ox === "auto" || ox === "scroll" || !main.contains(el)) continue;
      problem = `is cut off by ${describe(box)} (overflow-x: ${ox})`;
    }
    let outer = false;
    for (let a = node === el ? el.parentElement : el; a && !outer; a = a.parentElement) outer = reported.has(a);
    if (node === el) reported.add(el);
    if (!outer) report.tooWide.push(`${node === el ? describe(el) : `text in ${describe(el)}`} ${problem} (right edge at ${Math.round(r.right)} px, screen ${vw} px): ${node.textContent.trim().slice(0, 60)}`);
  }
  return report;
})().then(done, (e) => done({error: String(e)}));
"""


@pytest.fixture(scope="module")
def inspect(browser, html):
    reports = {}

    def inspect(page):
        if page not in reports:
            from selenium.webdriver.support.ui import WebDriverWait

            browser.get((html / page).as_uri())
            if page == "index.html":  # a redirect to the first chapter
                WebDriverWait(browser, 20).until(lambda d: not d.current_url.endswith("/index.html") and d.execute_script("return document.readyState") == "complete")
            report = browser.execute_async_script(INSPECT)
            assert "error" not in report, f"inspecting {page} failed: {report['error']}"
            reports[page] = report
        return reports[page]

    return inspect


@pytest.mark.parametrize("page", PAGES)
def test_math_renders_offline(inspect, page):
    report = inspect(page)
    if not report["formulas"]:
        return
    scripts = report["mathjaxScripts"]
    assert scripts and all(s.startswith("file://") for s in scripts), f"MathJax is not loaded from the site itself: {scripts}"
    assert report["mathjax"] == "ok", f"MathJax failed: {report['mathjax']}"
    assert not report["unrendered"], f"{len(report['unrendered'])} of {report['formulas']} formulas not typeset: {report['unrendered'][:5]}"
    assert not report["mathErrors"], f"TeX errors: {report['mathErrors'][:5]}"
    assert not report["fontErrors"], f"fonts that failed to load: {sorted(set(report['fontErrors']))}"


@pytest.mark.parametrize("page", PAGES)
def test_no_raw_tex_in_visible_text(inspect, page):
    assert not inspect(page)["rawTex"], f"raw TeX shown to the reader: {inspect(page)['rawTex'][:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_images_load(inspect, page):
    report = inspect(page)
    assert not report["brokenImages"], f"{len(report['brokenImages'])} of {report['images']} images did not load: {report['brokenImages'][:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_fits_a_phone_screen(inspect, page):
    report = inspect(page)
    assert report["viewport"] <= PHONE[0], f"the window is {report['viewport']} px wide, not a phone's {PHONE[0]} px"
    assert not report["tooWide"], "\n".join(report["tooWide"])
    assert report["scrollWidth"] <= report["viewport"] + 1, f"the page scrolls sideways: {report['scrollWidth']} px on a {report['viewport']} px screen"


def _static_page(html, page):
    from bs4 import BeautifulSoup

    text = (html / page).read_text(encoding="utf-8")
    if page == "index.html":  # <meta http-equiv="Refresh" content="0; url=book/...html" />
        target = re.search(r'url=([^"\'>\s]+)', text)
        assert target and (html / target.group(1)).exists(), f"index.html does not redirect to a built page: {text[:200]}"
        page, text = target.group(1), (html / target.group(1)).read_text(encoding="utf-8")
    return page, BeautifulSoup(text, "html.parser")


@pytest.mark.parametrize("page", PAGES)
def test_titles_and_navigation_have_no_raw_latex(html, page):
    """The <title> (browser tab, bookmarks, search results) and the navigation links, as written in
    the HTML: before MathJax runs, and for anything that never runs it, they must read as text."""
    page, soup = _static_page(html, page)
    texts = {"<title>": [soup.title.get_text() if soup.title else ""]}
    for where, selector in [("sidebar", ".bd-sidebar-primary a, .bd-header a"), ("on this page", ".bd-sidebar-secondary a, .bd-toc a"),
                            ("previous/next", ".prev-next-area a, .prev-next-footer a")]:
        texts[where] = [" ".join(a.get_text().split()) for a in soup.select(selector)]
    bad = [f"{where}: {t!r}" for where, ts in texts.items() for t in dict.fromkeys(ts) if "\\" in t or "$" in t]
    assert not bad, f"raw LaTeX in {page}'s title or navigation (a heading with math?):\n" + "\n".join(bad)
