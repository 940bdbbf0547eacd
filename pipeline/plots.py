"""pareto.png: TFLite accuracy against size and against latency, Pareto fronts marked."""
import io

# Pixels of pareto.png: FIGSIZE inches x DPI.
FIGSIZE = (11, 4.5)
DPI = 100


def pareto_front(points):
    """Indices of the points no other point beats (smaller x and higher y), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _colours(count):
    import matplotlib
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def pareto_png(variants, title):
    """PNG bytes of `pareto_figure`."""
    import matplotlib.pyplot as plt
    fig = pareto_figure(variants, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def pareto_figure(variants, title):
    """A matplotlib figure of two panels: accuracy vs the file's bytes on the device
    (what flash holds; gzip is only the download), accuracy vs median
    latency; a third, accuracy vs the estimated energy per inference on the
    recipe's first board, where the run estimated it. Each .tflite variant a
    point in the legend, the Pareto front circled and labelled."""
    import matplotlib
    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    from export import formats
    # The device's files: a server's ONNX file is in the report's tables, not on
    # a plot of what flash holds.
    ok = [v for v in variants if "error" not in v and formats.on_device(v.get("format"))]
    panels = [("file size on the device (KiB)", lambda v: v["size_bytes"] / 1024, ok),
              ("median latency (ms per invoke)", lambda v: v["latency_ms"]["p50"], ok)]
    # What a microcontroller would spend, where the run estimated it (full-integer
    # files on the recipe's boards; pipeline/device_energy.py): the first board's.
    board = next((name for v in ok for name in (v.get("mcu") or {})), None)
    if board:
        panels.append((f"energy per inference on {board} (uJ, estimated from MLPerf Tiny)",
                       lambda v: v["mcu"][board]["energy_uj"]["mid"],
                       [v for v in ok if board in (v.get("mcu") or {})]))
    width = FIGSIZE[0] * len(panels) / 2
    fig, axes = plt.subplots(1, len(panels), figsize=(width, FIGSIZE[1]), dpi=DPI)
    for ax, (label, x_of, chosen) in zip(axes, panels):
        ok_panel = chosen
        points = [(x_of(v), 100 * v["accuracy"]) for v in ok_panel]
        front = pareto_front(points)
        # Every variant gets a colour in the legend; only the Pareto points are
        # labelled on the plot, so labels of variants that sit on top of each
        # other (train_float16 over train_float32) never overlap.
        colours = dict(zip((v["name"] for v in ok), _colours(len(ok))))  # one per variant
        for (x, y), v in zip(points, ok_panel):
            ax.scatter(x, y, s=40, zorder=3, color=colours[v["name"]], label=v["name"])
        for i in front:  # front points differ in accuracy, so their labels stand apart
            ax.annotate(ok_panel[i]["name"], points[i], textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        if front:
            xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
            ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="black", zorder=4,
                       label="Pareto front (no variant smaller/faster and more accurate)")
            if len(front) > 1:
                ax.step(xs, ys, where="post", color="black", linewidth=1, zorder=2)
        if ax.get_legend_handles_labels()[0]:  # nothing to explain without a front
            ax.legend(loc="best", fontsize=7)
        ax.margins(x=0.15, y=0.25)
        # The margin above a 100 % point would draw an axis up to 104 %.
        low, high = ax.get_ylim()
        ax.set_ylim(low, min(high, 100.0 + 0.02 * (high - low)))
        ax.set_xlabel(label)
        ax.set_ylabel("TFLite test accuracy (%)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def search_png(record):
    """PNG bytes of a search's trials: one panel per objective, each trial's
    validation loss against that objective; the budget a dashed line, trials
    within it filled, the Pareto front circled (pipeline/search.py's record)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The loss is every panel's y axis; it needs no panel of its own.
    objectives = [o for o in record["objectives"] if o != "loss"] or ["loss"]
    budget_key, budget = next(iter(record["budget"].items()))
    trials = [r for r in record["trials"] if r.get("figures") and r.get("loss") is not None]
    fig, axes = plt.subplots(1, len(objectives), figsize=(5 * len(objectives), 4.2), dpi=DPI,
                             squeeze=False)
    for ax, objective in zip(axes[0], objectives):
        for within, style in ((True, dict(color="tab:blue", label="within budget")),
                              (False, dict(facecolors="none", edgecolors="tab:red",
                                           label="over budget"))):
            chosen = [r for r in trials if r["within_budget"] is within]
            if chosen:
                ax.scatter([r["figures"][objective] for r in chosen],
                           [r["loss"] for r in chosen], s=40, zorder=3, **style)
        front = [r for r in trials if r["pareto"]]
        if front:
            ax.scatter([r["figures"][objective] for r in front], [r["loss"] for r in front],
                       s=160, facecolors="none", edgecolors="black", zorder=4,
                       label="Pareto front")
            for r in front:
                ax.annotate(str(r["number"]), (r["figures"][objective], r["loss"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.axhline(budget, linestyle="--", color="grey", label=f"budget ({budget:g})")
        ax.set_xlabel(objective)
        ax.set_ylabel("loss on validation: " + ("accuracy points" if budget_key ==
                                                  "max_drop_points" else "perplexity %"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"greenlite search: {len(trials)} trial(s), objectives minimized")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()
