"""report.html in headless Chromium at a laptop's 1366 px: the answer on top, the
compact table within the window, and no sideways overflow of the page (the wide
tables scroll in their own boxes). Skipped, saying so, where no Chromium is on
PATH (`apt-get install chromium`)."""
import pytest

from benchmarks import report_in_browser
from pipeline import plots, report
from pipeline.recommend import recommend
from tests.pipeline.test_report import _report

pytestmark = pytest.mark.skipif(report_in_browser.browser() is None,
                                reason="no Chromium on PATH (apt-get install chromium)")


def _page(tmp_path, css_change=None):
    r = _report()
    r["baseline"]["float32_variant"] = "train_float32"
    r["recommendation"] = recommend(r)
    page = report.to_html(r, plots.pareto_png(r["variants"], "t"))
    if css_change:
        assert css_change[0] in page
        page = page.replace(*css_change)
    path = tmp_path / "report.html"
    path.write_text(page)
    return path


def test_the_page_fits_a_laptop_and_opens_with_its_answer(tmp_path):
    shot = tmp_path / "top.png"
    figures = report_in_browser.measure(_page(tmp_path), 1366, 900, screenshot=shot)
    assert figures["window_width"] == 1366
    assert figures["scroll_width"] <= 1366
    assert 0 < figures["glance_right"] <= 1366
    assert figures["answer"].startswith("Ship quantize_int8: 1/4.0 of the baseline float32 file")
    from PIL import Image
    assert Image.open(shot).size == (1366, 900)


def test_without_its_scroll_boxes_the_variant_table_would_overflow(tmp_path):
    """The check above can fail: the same page with the wide tables let loose is
    wider than the window."""
    figures = report_in_browser.measure(
        _page(tmp_path, (".wide{overflow-x:auto;max-width:100%}", "")), 1366, 900)
    assert figures["scroll_width"] > 1366
