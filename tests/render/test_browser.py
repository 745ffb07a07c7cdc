"""The report in a real headless Chromium (Debian's ``chromium``; never ``playwright install``).

Opened from file:// the way a reviewer opens an attachment: it must render with no console
errors, fetch nothing, show every probe, run no script even when names are hostile, and stay
usable in dark mode, on a phone-sized screen and in print. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from auditkit.render import render_html

pytestmark = pytest.mark.browser

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            "no /usr/bin/chromium: install Debian's package (apt-get install chromium; .ci/run "
            "does) to run the browser tests"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page opened from file:// with every request, console message, error and dialog recorded."""

    def __init__(self, browser, path: Path, **context_options) -> None:
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_timeout(150)  # let any (unwanted) onerror / timer handler fire

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.errors, self.errors
        assert not [m for m in self.console if m[0] in ("error", "warning")], self.console
        assert not self.dialogs, self.dialogs
        # Only the file itself: no fonts, scripts, styles or images from anywhere (data: PNGs
        # are decoded in place, not fetched, but tolerate a browser that reports them).
        assert [u for u in self.requests if not u.startswith("data:")] == [self.url], self.requests

    def close(self) -> None:
        self.context.close()


def _screenshot(visit: Visit, artifacts: Path, name: str) -> Path:
    """The first screen only: a full-page capture of a 20,000 px report failed on a loaded
    machine ("Unable to capture screenshot"), and people look at the top first anyway."""
    target = artifacts / name
    visit.page.evaluate("window.scrollTo(0, 0)")
    visit.page.screenshot(path=str(target), full_page=False, timeout=60_000)
    assert target.stat().st_size > 10_000
    return target


def _open_every_section(page) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")


def test_demo_report_opens_clean_with_every_probe(browser, demo_outputs, artifacts):
    audit = json.loads((demo_outputs / "audit.json").read_text(encoding="utf-8"))
    visit = Visit(browser, demo_outputs / "report.html", viewport={"width": 1280, "height": 900})
    try:
        visit.assert_clean()
        page = visit.page
        assert page.title().startswith("auditkit report")
        # Every probe that applies to this model has a tile and a section, in run order.
        shown = [n for n, p in audit["probes"].items()
                 if not (p.get("details") or {}).get("not_applicable")]
        sections = page.eval_on_selector_all(
            "section.probe", "els => els.map(e => e.dataset.probe)"
        )
        assert sections == shown
        tiles = page.eval_on_selector_all("li.tile", "els => els.map(e => e.dataset.probe)")
        assert tiles == shown
        _open_every_section(page)
        for name in shown:
            section = page.locator(f'section.probe[data-probe="{name}"]')
            assert section.is_visible()
            assert section.locator(".badge .word").first.inner_text().strip()
        charts = page.eval_on_selector_all(
            "svg.chart", "els => els.map(e => e.getBoundingClientRect().width)"
        )
        expected = sum(
            f.get("kind") in ("line", "bar", "reliability", "matrix")
            for name, p in audit["probes"].items() if name in shown
            for f in p["figures"]
        )
        assert len(charts) == expected and all(w > 100 for w in charts)
        images_ok = page.eval_on_selector_all(
            "img", "els => els.every(e => e.complete && e.naturalWidth > 0)"
        )
        assert images_ok
        _screenshot(visit, artifacts, "report-demo.png")
        page.emulate_media(media="print")
        hidden = page.eval_on_selector_all(
            "details.data", "els => els.every(e => getComputedStyle(e).display === 'none')"
        )
        assert hidden
        page.pdf(path=str(artifacts / "report-demo.pdf"), print_background=True)
        assert (artifacts / "report-demo.pdf").stat().st_size > 10_000
    finally:
        visit.close()


def test_hostile_names_never_execute(browser, hostile_audit, hostile, tmp_path, artifacts):
    path = tmp_path / "hostile.html"
    path.write_text(render_html(hostile_audit), encoding="utf-8")
    visit = Visit(browser, path, viewport={"width": 1280, "height": 900})
    try:
        # No alert fired, nothing fetched (the injected <img src=x> would have requested ./x).
        visit.assert_clean()
        page = visit.page
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        handlers = page.evaluate(
            "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
            ".filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"
        )
        assert handlers == []
        text = page.inner_text("body")
        assert f"class 3{hostile.script}{hostile.attribute}" in text  # shown literally, as text
        svg_text = page.eval_on_selector_all(
            "svg.chart text", "els => els.map(e => e.textContent).join(' ')"
        )
        assert f"sex{hostile.script}" in svg_text
        _screenshot(visit, artifacts, "report-hostile.png")
    finally:
        visit.close()


@pytest.mark.parametrize(
    ("scheme", "width"), [("dark", 1280), ("light", 390)], ids=["dark-desktop", "light-phone"]
)
def test_rich_report_renders_in_dark_mode_and_on_a_phone(
    browser, rich_audit, tmp_path, scheme, width, artifacts
):
    path = tmp_path / "rich.html"
    path.write_text(render_html(rich_audit), encoding="utf-8")
    visit = Visit(browser, path, viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        visit.assert_clean()
        page = visit.page
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == ("rgb(13, 17, 23)" if scheme == "dark" else "rgb(255, 255, 255)")
        # Wide content scrolls inside its own box; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.eval_on_selector_all("img", "els => els.every(e => e.naturalWidth > 0)")
        _screenshot(visit, artifacts, f"report-synthetic-{scheme}-{width}.png")
    finally:
        visit.close()


# Every visible piece of text: its rendered size in CSS px (SVG text scaled with its chart), and
# whether a text that ends in "…" was cut inside a word (its full text is the tooltip: a title
# attribute or an SVG <title> on it or an ancestor).
_LAYOUT_JS = """
() => {
  const out = {small: [], cuts: [], untitled: []};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest('title, desc, .sr, thead')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest('svg.chart');
    if (svg && svg.viewBox.baseVal && svg.viewBox.baseVal.width) {
      size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    }
    if (size < 9.95) out.small.push([text.slice(0, 40), Math.round(size * 10) / 10]);
    if (text.endsWith('…') && !seen.has(el)) {
      seen.add(el);
      let full = null;
      for (let a = el; a && a !== document.body; a = a.parentElement) {
        if (a.getAttribute && a.getAttribute('title')) { full = a.getAttribute('title'); break; }
        const t = a.querySelector && a.querySelector(':scope > title');
        if (t) { full = t.textContent; break; }
      }
      const prefix = text.slice(0, -1).trim();
      if (full === null) { out.untitled.push(text.slice(-60)); continue; }
      const flat = full.split(/\\s+/).join(' ');
      const at = flat.indexOf(prefix);
      const next = at < 0 ? '' : flat.charAt(at + prefix.length);
      if (at < 0 || /[A-Za-z0-9]/.test(next)) out.cuts.push([prefix.slice(-30), flat.slice(0, 80)]);
    }
  }
  return out;
}
"""


@pytest.mark.parametrize("width", [1400, 390])
def test_report_reads_at_desktop_and_phone_width(browser, demo_outputs, rich_audit, tmp_path,
                                                   artifacts, width):
    """The issue's layout rules: no sideways scrolling of the page, no text under 10 CSS px (chart
    text included), nothing cut inside a word, and every non-passed tile's reason listed in
    "What to look at first"."""
    rich = tmp_path / "rich.html"
    rich.write_text(render_html(rich_audit), encoding="utf-8")
    for name, path in (("demo", demo_outputs / "report.html"), ("synthetic", rich)):
        visit = Visit(browser, path, viewport={"width": width, "height": 900})
        try:
            visit.assert_clean()
            page = visit.page
            assert page.evaluate("document.documentElement.scrollWidth") <= width, name
            layout = page.evaluate(_LAYOUT_JS)
            assert layout["small"] == [], (name, layout["small"][:10])
            assert layout["cuts"] == [], (name, layout["cuts"][:10])
            assert layout["untitled"] == [], (name, layout["untitled"][:10])
            look_first = " ".join(page.inner_text("ul.look-first").split()) if page.query_selector(
                "ul.look-first") else ""
            tiles = page.eval_on_selector_all(
                "li.tile",
                "els => els.map(e => [e.dataset.probe, e.className, "
                "(e.querySelector('.reason') || {}).title || "
                "((e.querySelector('.reason') || {}).textContent || '')])",
            )
            for probe, classes, reason in tiles:
                if any(f"s-{s}" in classes for s in ("failed", "warned", "error")):
                    words = " ".join(reason.split()).removeprefix("Error: ")
                    words = words.split(": ", 1)[-1] if "_" in words.split(": ", 1)[0] else words
                    assert words and words in look_first, (name, probe, words)
            if width < 500:
                # Tables reflow: a metric row's cells stack, each under its own label.
                cells = page.eval_on_selector_all(
                    "table.reflow td", "els => els.slice(0, 6).map(e => getComputedStyle(e).display)"
                )
                assert cells and set(cells) == {"block"}
                galleries = page.eval_on_selector_all(
                    "table.gallery",
                    "els => els.map(e => e.getBoundingClientRect().right <= "
                    "e.closest('figure').getBoundingClientRect().right + 1)",
                )
                assert all(galleries), name
            _screenshot(visit, artifacts, f"report-{name}-{width}.png")
        finally:
            visit.close()


# What the issue asks of every report at every width, measured in the page: the page does not
# scroll sideways; no element sticks out of its parent unless it sits in a scroll container
# (wide tables scroll inside their card); every chart <svg> lies within its card; no visible
# text is under 10 CSS px (SVG text scaled with its chart). ``openAll`` opens every <details>
# first, so collapsed sections are measured too.
_FIT_JS = """
(openAll) => {
  if (openAll) document.querySelectorAll('details').forEach(d => d.open = true);
  const out = {pageScroll: document.documentElement.scrollWidth - innerWidth, wide: [], svgs: [], small: []};
  const desc = el => (el.tagName.toLowerCase() + (el.className && el.className.baseVal !== undefined ? '.' + el.className.baseVal : (el.className ? '.' + String(el.className).split(' ').join('.') : '')) + (el.closest('[data-probe]') ? '@' + el.closest('[data-probe]').dataset.probe : '') + ' ' + (el.textContent || '').trim().slice(0, 30));
  const inScroll = el => { for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) { const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll') return true; } return false; };
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('title, desc, .sr')) continue;
    const inSvg = el.ownerSVGElement !== undefined && el.ownerSVGElement !== null;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || !el.checkVisibility()) continue;
    if (el.tagName.toLowerCase() === 'svg' && !el.classList.contains('icon')) {
      const card = el.parentElement.closest('figure, .tile, li, td, section, .card, main, body');
      const c = card.getBoundingClientRect();
      if (r.right > c.right + 1 || r.left < c.left - 1) out.svgs.push([desc(el), Math.round(r.right - c.right), Math.round(c.left - r.left)]);
    }
    if (inSvg) continue;
    const p = el.parentElement;
    if (!p || inScroll(el)) continue;
    const pr = p.getBoundingClientRect();
    if (r.right > pr.right + 1 || r.left < pr.left - 1) out.wide.push([desc(el), Math.round(r.right - pr.right), Math.round(pr.left - r.left)]);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, text = node.textContent.trim(), el = node.parentElement;
    if (!text || !el || el.closest('title, desc, .sr, thead')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || !el.checkVisibility()) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest('svg');
    if (svg && svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width) size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    if (size < 9.95) out.small.push([text.slice(0, 30), Math.round(size * 10) / 10]);
  }
  out.nwide = out.wide.length; out.nsvgs = out.svgs.length; out.nsmall = out.small.length;
  out.wide = out.wide.slice(0, 8); out.svgs = out.svgs.slice(0, 8); out.small = out.small.slice(0, 8);
  return out;
}
"""


# The ONNX report needs a full fast scan of the converted demo CNN (~20 s idle): make test-slow.
@pytest.mark.parametrize("name", ["demo", "table", pytest.param("onnx", marks=pytest.mark.slow),
                                  "gcn", "nas"])
def test_every_report_fits_phone_tablet_and_desktop(browser, five_reports, name):
    path = five_reports[name]()
    for width in (390, 768, 1400):
        visit = Visit(browser, path, viewport={"width": width, "height": 900})
        try:
            visit.assert_clean()
            for opened in (False, True):
                found = visit.page.evaluate(_FIT_JS, opened)
                where = (name, width, "all sections open" if opened else "as opened")
                assert found["pageScroll"] <= 0, (where, found["pageScroll"])
                assert found["nwide"] == 0, (where, found["wide"])
                assert found["nsvgs"] == 0, (where, found["svgs"])
                assert found["nsmall"] == 0, (where, found["small"])
        finally:
            visit.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_sections_open_when_they_need_attention_and_the_contents_bar_jumps(
    browser, rich_audit, tmp_path, width
):
    """Failed, warned and errored sections start open, the others collapsed; the contents bar
    (sticky on a desktop, a collapsed list on a phone) jumps to each probe; on a phone the
    verdict and the tiles come before the model/data/run panels. No script does any of it."""
    path = tmp_path / "rich.html"
    path.write_text(render_html(rich_audit), encoding="utf-8")
    visit = Visit(browser, path, viewport={"width": width, "height": 900})
    try:
        visit.assert_clean()
        page = visit.page
        sections = page.eval_on_selector_all(
            "section.probe",
            "els => els.map(e => [e.dataset.probe, e.className, "
            "e.querySelector('details.probe-d').open])",
        )
        assert len(sections) == len(rich_audit.probes)
        for name, classes, is_open in sections:
            wanted = any(f"s-{s}" in classes.split() for s in ("failed", "warned", "error"))
            assert is_open is wanted, (name, classes)
        phone = width < 640
        bar, other = ("details.toc-m", "nav.toc") if phone else ("nav.toc", "details.toc-m")
        assert page.locator(bar).is_visible() and not page.locator(other).is_visible()
        if phone:
            assert not page.evaluate("document.querySelector('details.toc-m').open")
            page.click("details.toc-m > summary")
        hrefs = page.eval_on_selector_all(f"{bar} a", "els => els.map(a => a.getAttribute('href'))")
        ids = page.eval_on_selector_all("section.probe", "els => els.map(e => '#' + e.id)")
        assert set(ids) <= set(hrefs)
        assert all(page.evaluate("h => !!document.getElementById(h.slice(1))", h) for h in hrefs)
        target = ids[-1]
        page.click(f'{bar} a[href="{target}"]')
        page.wait_for_function(
            "h => location.hash === h", arg=target, timeout=10_000
        )
        top = page.evaluate("h => document.querySelector(h).getBoundingClientRect().top", target)
        assert page.evaluate("scrollY") > 0 and top + 40 <= 900, top  # jumped: heading in view
        if not phone:
            # The bar stayed at the top (sticky) and does not cover the heading it jumped to.
            box = page.evaluate("(() => { const r = document.querySelector('nav.toc')"
                                ".getBoundingClientRect(); return [r.top, r.bottom]; })()")
            assert box[0] == 0 and top >= box[1], (box, top)
        else:
            ident = page.evaluate("document.querySelector('.ident').getBoundingClientRect().top")
            tile = page.evaluate("document.querySelector('li.tile').getBoundingClientRect().top")
            verdict = page.evaluate("document.querySelector('.verdict').getBoundingClientRect().top")
            assert verdict < tile < ident
        assert page.evaluate("document.querySelectorAll('script').length") == 0
    finally:
        visit.close()
