"""report.html in a real browser (headless Chromium) at a laptop's width: a screenshot
of its top, and whether anything overflows the page sideways.

    python benchmarks/report_in_browser.py --report=runs/default/report.html \
        [--width=1366] [--height=900] [--screenshot=report_top.png]

Prints the page's scroll width against the window's, and the right edge of the
"At a glance" table; exits 1 when the page overflows. Needs a Chromium on PATH
(`apt-get install chromium` on Debian); tests/pipeline/test_report_browser.py
runs the same check and is skipped, saying so, without one.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Written into the page's title, which --dump-dom prints back.
PROBE = ("<script>document.title = JSON.stringify({"
         "scroll_width: document.documentElement.scrollWidth,"
         "window_width: window.innerWidth,"
         "glance_right: (document.querySelector('.glance table') || {getBoundingClientRect:"
         " () => ({right: 0})}).getBoundingClientRect().right,"
         "answer: (document.querySelector('.answer') || {innerText: ''}).innerText});</script>")


def browser():
    """The first Chromium on PATH, or None."""
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def _chromium(binary, width, height, *args):
    # --no-sandbox: CI and these machines run as root, where Chromium's sandbox refuses.
    # Its profile holds a Unix socket, whose path may not exceed ~100 bytes: a deep
    # TMPDIR (the tests' own, nested) stopped it ("Socket path too long"), so the
    # profile goes under /tmp when the usual temporary directory is that deep.
    base = tempfile.gettempdir()
    base = base if len(base) < 40 else "/tmp"
    with tempfile.TemporaryDirectory(prefix="glc-", dir=base) as profile:
        return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                               "--hide-scrollbars", f"--window-size={width},{height}", *args],
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, env={**os.environ, "TMPDIR": profile})


def measure(html_path, width=1366, height=900, screenshot=None, binary=None):
    """{scroll_width, window_width, glance_right, answer} of the page at that window size;
    writes a PNG of the window to `screenshot` when given."""
    binary = binary or browser()
    if binary is None:
        raise RuntimeError("no Chromium on PATH (tried " + ", ".join(BROWSERS) + ")")
    with open(html_path) as f:
        page = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        probed = os.path.join(tmp, "probed.html")
        with open(probed, "w") as f:
            f.write(page.replace("</body>", PROBE + "</body>"))
        result = _chromium(binary, width, height, "--dump-dom", f"file://{probed}")
        match = re.search(r"<title>(.*?)</title>", result.stdout, re.S)
        if not match:
            raise RuntimeError(f"Chromium printed no page (exit {result.returncode}): {result.stderr.strip()[-300:]}")
        import html
        figures = json.loads(html.unescape(match.group(1)))
    if screenshot:
        _chromium(binary, width, height, f"--screenshot={os.path.abspath(screenshot)}",
                  f"file://{os.path.abspath(html_path)}")
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True)
    parser.add_argument("--width", type=int, default=1366)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args(argv)
    figures = measure(args.report, args.width, args.height, args.screenshot)
    overflow = figures["scroll_width"] > figures["window_width"]
    print(f"window {figures['window_width']} px; page scroll width {figures['scroll_width']} px"
          f" ({'OVERFLOWS' if overflow else 'no horizontal overflow'}); 'At a glance' table "
          f"ends at {figures['glance_right']:.0f} px")
    print(f"answer: {figures['answer']}")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    return 1 if overflow else 0


if __name__ == "__main__":
    sys.exit(main())
