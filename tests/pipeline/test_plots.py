"""pareto.png: the front, and a real PNG of the expected size."""
import struct

from pipeline import plots


def test_pareto_front():
    # (size, accuracy): b is beaten by a (smaller and more accurate); d by c.
    points = [(10, 90), (20, 85), (30, 95), (40, 94), (5, 80)]
    assert plots.pareto_front(points) == [4, 0, 2]


def test_png_is_real_and_sized():
    variants = [
        {"name": "a_float32", "gzip_bytes": 500_000, "accuracy": 0.97, "latency_ms": {"p50": 0.02}},
        {"name": "a_int8", "gzip_bytes": 120_000, "accuracy": 0.965, "latency_ms": {"p50": 0.006}},
        {"name": "broken", "error": "converter crashed"},
    ]
    png = plots.pareto_png(variants, "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (plots.FIGSIZE[0] * plots.DPI, plots.FIGSIZE[1] * plots.DPI)
