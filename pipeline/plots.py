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
    """A matplotlib figure of two panels: accuracy vs gzip size, accuracy vs median
    latency; each variant a point in the legend, the Pareto front circled and labelled."""
    import matplotlib
    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    ok = [v for v in variants if "error" not in v]
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    panels = [(axes[0], "gzip size (KiB)", lambda v: v["gzip_bytes"] / 1024),
              (axes[1], "median latency (ms per invoke)", lambda v: v["latency_ms"]["p50"])]
    for ax, label, x_of in panels:
        points = [(x_of(v), 100 * v["accuracy"]) for v in ok]
        front = pareto_front(points)
        # Every variant gets a colour in the legend; only the Pareto points are
        # labelled on the plot, so labels of variants that sit on top of each
        # other (train_float16 over train_float32) never overlap.
        for (x, y), v, colour in zip(points, ok, _colours(len(ok))):
            ax.scatter(x, y, s=40, zorder=3, color=colour, label=v["name"])
        for i in front:  # front points differ in accuracy, so their labels stand apart
            ax.annotate(ok[i]["name"], points[i], textcoords="offset points",
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
        ax.set_xlabel(label)
        ax.set_ylabel("TFLite test accuracy (%)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
