"""Report safety: strings from data and config are escaped in the HTML pages, checked in the HTML text and
in headless Chromium (no injected script runs, no console errors, every image decodes).

The browser tests need Debian's ``chromium`` (/usr/bin/chromium); ``make test`` installs it when run as
root (tests/setup_system_deps.sh) and they skip without it.
"""

import hashlib
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from markupsafe import escape

from conftest import DESCRIPTION, IMG, PLAIN, SCRIPT

CHROMIUM = Path("/usr/bin/chromium")
CONFIG_LINE = "# <script>alert(3)</script>"   # config text of a second version (compare page's diff)
PAYLOADS = [SCRIPT, IMG, DESCRIPTION, CONFIG_LINE]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="headless browser test: /usr/bin/chromium is missing (Debian package 'chromium'; "
           "`make test` installs it when run as root, see tests/setup_system_deps.sh)")


@pytest.fixture(scope="module")
def payload_run(grouped_run):
    """The session's tiny grouped run (conftest.grouped_run: groups renamed to HTML payloads, a payload as
    description), plus a comparison of it with a copy whose config text carries a payload line."""
    wd = grouped_run
    from hbm.compare import compare

    res = wd / "results" / "grouped"
    other = wd / "results" / "versions" / "edited" / "grouped"
    shutil.copytree(res, other)
    prov = json.loads((other / "provenance.json").read_text())
    prov["config_text"] += CONFIG_LINE + "\n"
    prov["config_sha256"] = hashlib.sha256(prov["config_text"].encode()).hexdigest()
    (other / "provenance.json").write_text(json.dumps(prov))
    out = res / "compare"
    compare(out / "current_vs_edited.html", out / "current_vs_edited.json", out / "current_vs_edited.png",
            analysis="grouped", label_a="current", label_b="edited", dir_a=res, dir_b=other)
    return wd


def pages(wd: Path) -> dict:
    res = wd / "results" / "grouped"
    return {"report": res / "report.html", "compare": res / "compare" / "current_vs_edited.html"}


# ---------------------------------------------------------------------------------------------- HTML text

@pytest.mark.slow
def test_report_html_escapes_group_names_and_description(payload_run):
    text = pages(payload_run)["report"].read_text()
    for raw in (SCRIPT, IMG, DESCRIPTION, "onerror=alert(1)>", "<img src=x"):
        assert raw not in text, f"unescaped in report.html: {raw!r}"
    assert "<script" not in text.lower()
    esc_script, esc_img = escape(SCRIPT), escape(IMG)  # what Jinja2's autoescape writes
    assert f"<p>{escape(DESCRIPTION)}</p>" in text
    # the parameter tables name every group: theta[...] and sigma[...] (noise: group)
    for par in ("theta", "sigma"):
        for esc in (esc_script, esc_img, escape(PLAIN)):
            assert f'<td class="l">{par}[{esc}]</td>' in text, (par, esc)
    assert f"description: {escape(DESCRIPTION)}" in text  # the config text under Provenance
    # prior, rank, shrinkage, posterior predictive, LOO-PIT and the pooling comparison
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*">', text)) == 6


@pytest.mark.slow
def test_compare_html_escapes_group_names_and_config_diff(payload_run):
    text = pages(payload_run)["compare"].read_text()
    for raw in (SCRIPT, IMG, CONFIG_LINE, "onerror=alert(1)>"):
        assert raw not in text, f"unescaped in the comparison page: {raw!r}"
    assert "<script" not in text.lower()
    assert f'<span class="add">+{escape(CONFIG_LINE)}</span>' in text
    for esc in (escape(SCRIPT), escape(IMG)):
        assert f'<td class="l">theta[{esc}]</td>' in text


# --------------------------------------------------------------------------------------- headless browser

# Inserted right after <head>: runs before anything in the page; records dialogs, console calls, errors.
HEAD_PROBE = """<script>
window.__hbm = {dialogs: [], console: [], errors: []};
["alert", "confirm", "prompt"].forEach(function (n) {
  window[n] = function (m) { window.__hbm.dialogs.push(n + "(" + String(m) + ")"); return n === "confirm" ? false : null; };
});
["error", "warn"].forEach(function (n) {
  var f = console[n].bind(console);
  console[n] = function () { window.__hbm.console.push(n + ": " + Array.prototype.join.call(arguments, " ")); f.apply(null, arguments); };
});
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__hbm.errors.push(t && t !== window && t.tagName
    ? "failed to load <" + t.tagName.toLowerCase() + "> " + String(t.src || t.href || "").slice(0, 80)
    : "uncaught: " + String(e.message));
}, true);
</script>
"""

# Inserted before </body>: on load, writes a JSON verdict into <pre id="hbm-verdict"> for --dump-dom.
TAIL_PROBE = """<pre id="hbm-verdict"></pre>
<script>
window.addEventListener("load", function () {
  var probe = %(texts)s, body = document.body.innerText, handlers = [];
  document.querySelectorAll("*").forEach(function (el) {
    Array.prototype.forEach.call(el.attributes, function (a) {
      if (/^on/i.test(a.name) || /^\\s*javascript:/i.test(a.value)) handlers.push(el.tagName + " " + a.name);
    });
  });
  document.getElementById("hbm-verdict").textContent = JSON.stringify({
    dialogs: window.__hbm.dialogs, console: window.__hbm.console, errors: window.__hbm.errors,
    images: Array.prototype.map.call(document.images, function (i) {
      return {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
    }),
    scripts: document.scripts.length, handlers: handlers,
    shown: probe.filter(function (t) { return body.indexOf(t) >= 0; })
  });
});
</script>
"""
PROBE_SCRIPTS = 2  # HEAD_PROBE and TAIL_PROBE: any other <script> element was injected


def instrumented(page: Path, dest: Path, texts=()) -> Path:
    """A copy of ``page`` with the probes; ``texts``: strings whose presence as visible text is reported."""
    doc = page.read_text()
    assert doc.count("<head>") == 1 and doc.count("</body>") == 1
    texts_js = json.dumps(list(texts)).replace("<", "\\u003c")  # no '</script>' inside the probe
    head, tail = doc.split("</body>")
    dest.write_text(head.replace("<head>", "<head>\n" + HEAD_PROBE, 1) + TAIL_PROBE % {"texts": texts_js}
                    + "</body>" + tail)
    return dest


def chromium(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile, no network chatter, logging the page's console to stderr."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


# A page console message in Chromium's stderr log: "[pid:tid:time:INFO:CONSOLE:12] "text", source: url (12)".
# This Chromium logs every console level as INFO, so every message counts: the pages have no scripts of
# their own, and the probes never write to the console. Chromium's own log lines (dbus, GPU, sandbox) are
# not CONSOLE lines and are left alone.
CONSOLE = re.compile(r"^\[[^\]]*:CONSOLE(?:\(\d+\)|:\d+)?\]\s*(.*)$", re.M)


def console_messages(stderr: str) -> list[str]:
    return CONSOLE.findall(stderr)


def open_in_browser(page: Path, tmp_path: Path, texts=()) -> tuple[dict, list[str]]:
    """Load ``page`` (instrumented copy) in headless Chromium: its verdict and its console messages."""
    probe = instrumented(page, Path(tmp_path) / f"probed-{page.name}", texts)
    proc = chromium(tmp_path, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="hbm-verdict">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1).strip(), f"no verdict: the load handler did not run\n{proc.stderr[-3000:]}"
    return json.loads(html.unescape(found.group(1))), console_messages(proc.stderr)


@needs_chromium
def test_browser_probe_catches_an_unsafe_page(tmp_path):
    """The harness itself: a page that does inject, log an error and break an image must fail each check."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>t</title></head><body>"
                   f"<p>{SCRIPT}</p><p>{IMG}</p><script>console.error('boom'); missingFunction();</script>"
                   "</body></html>")
    verdict, console = open_in_browser(bad, tmp_path, texts=[SCRIPT])
    assert "alert(1)" in verdict["dialogs"]
    assert verdict["scripts"] > PROBE_SCRIPTS and verdict["handlers"] == ["IMG onerror"]
    assert [i["width"] for i in verdict["images"]] == [0]
    assert any(e.startswith("failed to load <img>") for e in verdict["errors"])
    assert any("missingFunction" in e for e in verdict["errors"])
    assert verdict["console"] == ["error: boom"] and verdict["shown"] == []
    assert any("boom" in m for m in console) and any("missingFunction" in m for m in console)


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("name", ["report", "compare"])
def test_page_in_headless_chromium_shows_payloads_as_text(payload_run, tmp_path, name):
    page = pages(payload_run)[name]
    texts = [SCRIPT, IMG] + ([DESCRIPTION] if name == "report" else ["+" + CONFIG_LINE])
    verdict, console = open_in_browser(page, tmp_path, texts)
    assert verdict["dialogs"] == [], f"an injected script ran: {verdict['dialogs']}"
    assert verdict["scripts"] == PROBE_SCRIPTS and verdict["handlers"] == [], verdict
    assert verdict["errors"] == [] and verdict["console"] == [], verdict
    assert console == [], f"console messages: {console}"
    assert verdict["shown"] == texts, "payloads must show as text"
    assert len(verdict["images"]) == (6 if name == "report" else 1)
    for img in verdict["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, f"image does not decode: {img}"

    # A screenshot, for people to look at: <workdir>/results/report_safety/
    shot = payload_run / "results" / "report_safety" / ("screenshot.png" if name == "report"
                                                        else "screenshot_compare.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars",
                    page.as_uri())
    assert console_messages(proc.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
