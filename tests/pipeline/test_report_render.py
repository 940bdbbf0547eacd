"""report.html shows the report's words without raw Markdown; payback reads "—" when nothing was compressed."""
from pipeline import report


def test_inline_markdown_becomes_html():
    text = "**`quantize_int8` fails** its check; *gzip smaller*: a < b"
    assert report.inline_html(text) == (
        "<strong><code>quantize_int8</code> fails</strong> its check; <em>gzip smaller</em>: "
        "a &lt; b")


def test_payback_of_an_uncompressed_variant_is_a_dash():
    assert report._payback({"joules_per_inference": 1e-5, "payback_inferences": 0,
                            "extra_emissions_kg": 0.0}) == "—"
    assert report._payback({"joules_per_inference": 1e-5, "payback_inferences": 1500.0,
                            "extra_emissions_kg": 1e-6}) == "1,500"
    assert report._payback({"joules_per_inference": 1e-5, "payback_inferences": None,
                            "extra_emissions_kg": 1e-6}) == "never (no saving)"
