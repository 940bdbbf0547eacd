"""pareto.png: the front, what each panel plots and labels, and a real PNG."""
import struct

from pipeline import plots


def test_pareto_front():
    # (size, accuracy): b is beaten by a (smaller and more accurate); d by c.
    points = [(10, 90), (20, 85), (30, 95), (40, 94), (5, 80)]
    assert plots.pareto_front(points) == [4, 0, 2]


def test_png_is_real_and_sized():
    variants = [
        {"name": "a_float32", "size_bytes": 600_000, "gzip_bytes": 500_000, "accuracy": 0.97, "latency_ms": {"p50": 0.02}},
        {"name": "a_int8", "size_bytes": 160_000, "gzip_bytes": 120_000, "accuracy": 0.965, "latency_ms": {"p50": 0.006}},
        {"name": "broken", "error": "converter crashed"},
    ]
    png = plots.pareto_png(variants, "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (plots.FIGSIZE[0] * plots.DPI, plots.FIGSIZE[1] * plots.DPI)


def test_each_panel_plots_every_variant_and_labels_only_its_front():
    import matplotlib.pyplot as plt
    variants = [
        # Device bytes, not gzip: pruned files gzip far smaller than they are
        # (f16 here would lead the size front on gzip).
        {"name": "f32", "size_bytes": 400 * 1024, "gzip_bytes": 380 * 1024, "accuracy": 0.97,
         "latency_ms": {"p50": 0.08}},
        {"name": "f16", "size_bytes": 300 * 1024, "gzip_bytes": 50 * 1024, "accuracy": 0.97,
         "latency_ms": {"p50": 0.09}},
        {"name": "i8", "size_bytes": 100 * 1024, "gzip_bytes": 90 * 1024, "accuracy": 0.95,
         "latency_ms": {"p50": 0.05}},
        {"name": "bad", "size_bytes": 200 * 1024, "gzip_bytes": 190 * 1024, "accuracy": 0.90,
         "latency_ms": {"p50": 0.20}},
        {"name": "broken", "error": "converter crashed"},
    ]
    fig = plots.pareto_figure(variants, "t")
    size_panel, latency_panel = fig.axes
    # Size: i8 (smallest) then f16 (as accurate as f32, smaller); latency: i8 then f32.
    expected = {size_panel: (["i8", "f16"], [100, 300, 400, 200]),
                latency_panel: (["i8", "f32"], [0.05, 0.08, 0.09, 0.20])}
    for ax, (front, xs) in expected.items():
        assert sorted(t.get_text() for t in ax.texts) == sorted(front)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend[:4] == ["f32", "f16", "i8", "bad"] and "broken" not in legend
        plotted = sorted(float(c.get_offsets()[0][0]) for c in ax.collections[:4])
        assert plotted == sorted(xs)
    plt.close(fig)


def test_search_png_draws_one_panel_per_objective():
    import io

    from PIL import Image

    from pipeline import plots

    def trial(number, size, macs, loss, pareto):
        return {"number": number, "figures": {"size_bytes": size, "macs": macs}, "loss": loss,
                "within_budget": loss <= 2, "pareto": pareto}
    record = {"objectives": ["size_bytes", "macs"], "budget": {"max_drop_points": 2.0},
              "trials": [trial(0, 1000, 50, 0.5, True), trial(1, 500, 20, 1.5, True),
                         trial(2, 800, 40, 3.0, False),
                         {"number": 3, "error": "failed", "figures": None, "loss": None}]}
    image = Image.open(io.BytesIO(plots.search_png(record)))
    assert image.size == (2 * 5 * plots.DPI, int(4.2 * plots.DPI))


def test_the_accuracy_axis_stops_near_100_percent():
    """A file at 100 % drew an axis up to 104 % (the margin above it)."""
    import matplotlib.pyplot as plt
    variants = [
        {"name": "f32", "size_bytes": 400_000, "gzip_bytes": 1, "accuracy": 1.0,
         "latency_ms": {"p50": 0.08}},
        {"name": "i8", "size_bytes": 100_000, "gzip_bytes": 1, "accuracy": 0.90,
         "latency_ms": {"p50": 0.05}},
    ]
    fig = plots.pareto_figure(variants, "t")
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert 100.0 <= high <= 100.5 and low < 90.0  # unclamped: 102.5
    plt.close(fig)


def test_a_third_panel_plots_the_estimated_energy_on_the_first_board():
    """Where the run estimated board energy (full-integer files only), a panel of
    accuracy against the middle estimate on the first board: the float file has
    none and is not on it; the cheaper, less accurate file and the dearer, more
    accurate one are both on its front."""
    import matplotlib.pyplot as plt

    def mcu(mid):
        return {"stm32u385": {"energy_uj": {"low": mid / 2, "mid": mid, "high": mid * 2}},
                "stm32l4r5": {"energy_uj": {"low": 1, "mid": 9 * mid, "high": 99}}}
    variants = [
        {"name": "f32", "size_bytes": 400_000, "accuracy": 0.97, "latency_ms": {"p50": 0.08}},
        {"name": "i8", "size_bytes": 100_000, "accuracy": 0.95, "latency_ms": {"p50": 0.05},
         "mcu": mcu(120.0)},
        {"name": "p_i8", "size_bytes": 40_000, "accuracy": 0.93, "latency_ms": {"p50": 0.03},
         "mcu": mcu(45.0)},
    ]
    fig = plots.pareto_figure(variants, "t")
    assert len(fig.axes) == 3
    energy = fig.axes[2]
    assert energy.get_xlabel() == ("energy per inference on stm32u385 (uJ, estimated from "
                                   "MLPerf Tiny)")
    plotted = sorted(float(c.get_offsets()[0][0]) for c in energy.collections[:2])
    assert plotted == [45.0, 120.0]
    assert sorted(t.get_text() for t in energy.texts) == ["i8", "p_i8"]
    assert fig.get_size_inches()[0] == plots.FIGSIZE[0] * 1.5
    plt.close(fig)
