"""The report's answer in one line: which file to ship, within the recipe's budget.

    >>> line = recommend(report)["text"]      # doctest: +SKIP
    '`quantize_int8`: 1/3.8 of the baseline float32 file on the device (159,306 B),
     1.2x faster here (p50), +0.00 points, fits arduino-nano-33-ble (RAM 229.8 KiB
     and flash 801.3 KiB to spare)'

The pick: among the files that converted and are within the budget
(`export.max_drop_points` of the baseline Keras model's accuracy for a
classifier, `export.max_rise_percent` of its perplexity for a language
model), those that fit one of the recipe's boards first, then the fewest
bytes on the device; a tie goes to the more accurate.
Bytes on the device, not gzip: flash is what a target holds. Only device
files (.tflite) are candidates: an ONNX file or a TensorRT engine is a
server's, reported beside them in the tables.
"""
from export import formats
from export.budget import Budget


def budget_of(report):
    """The recipe's budget for this report's task, and the reference figures it is on."""
    export = report["recipe"].get("export", {})
    if report["data"].get("task") == "language_model":
        first = report["stages"][0] if report["stages"] else {}
        reference = first.get("keras_perplexity")
        if reference is None:  # a record without it: the baseline float32 file's
            name = report["baseline"].get("float32_variant")
            reference = next((v.get("perplexity") for v in report["variants"]
                              if v["name"] == name), None)
        return (Budget("max_rise_percent", export.get("max_rise_percent", 5.0)),
                {"perplexity": reference} if reference else None)
    return (Budget("max_drop_points", export.get("max_drop_points", 2.0)),
            {"accuracy": report["baseline"]["keras_accuracy"]})


def _scored(v, budget):
    return ("error" not in v and v.get(budget.metric) is not None
            and formats.on_device(v["format"]))


def recommend(report):
    """{"variant": name or None, "text": the line, "within_budget": bool}."""
    budget, reference = budget_of(report)
    scored = [v for v in report["variants"] if _scored(v, budget)]
    if not scored or reference is None:
        return {"variant": None, "within_budget": False,
                "text": "no file was scored, so none can be recommended"}
    within = [v for v in scored if budget.within(v, reference)]
    if not within:
        closest = min(scored, key=lambda v: budget.loss(v, reference))
        return {"variant": None, "within_budget": False,
                "text": (f"no file is within the budget ({budget.kind}: {budget.value:g}); the "
                         f"closest is `{closest['name']}` at "
                         f"{_loss_text(budget, budget.loss(closest, reference))}")}
    # A file that fits one of the recipe's boards comes first: a smaller one that
    # runs on no board (dynamic-range int8 computes in float) is not the answer
    # for a recipe that names boards.
    pick = min(within, key=lambda v: (not _fits_a_board(v), v["size_bytes"],
                                      budget.loss(v, reference)))
    parts = [f"`{pick['name']}`: {_size_text(pick, report)}"]
    speed = _speed_text(pick, report)
    if speed:
        parts.append(speed)
    parts.append(_loss_text(budget, budget.loss(pick, reference)))
    parts.append(_fit_text(pick))
    return {"variant": pick["name"], "within_budget": True, "text": ", ".join(parts)}


def board_verdicts(v):
    """The fit verdicts of variant `v` on the recipe's boards (none: not micro-checked)."""
    return (v.get("micro") or {}).get("targets") or []


def _fits_a_board(v):
    return any(t.get("fits") for t in board_verdicts(v))


def _baseline_file(report):
    name = report["baseline"].get("float32_variant")
    return next((v for v in report["variants"] if v["name"] == name and "error" not in v), None)


def _size_text(v, report):
    base = _baseline_file(report)
    if base is None or base is v:
        return f"{v['size_bytes']:,} B on the device"
    ratio = v["size_bytes"] / base["size_bytes"]
    share = f"1/{1 / ratio:.1f}" if ratio < 0.5 else f"{ratio:.2f}x"
    return f"{share} of the baseline float32 file on the device ({v['size_bytes']:,} B)"


def _speed_text(v, report):
    """How much faster than the baseline float32 file on this machine's p50."""
    base = _baseline_file(report)
    if base is None or base is v or not v.get("latency_ms") or not base.get("latency_ms"):
        return None
    ratio = base["latency_ms"]["p50"] / v["latency_ms"]["p50"]
    if ratio >= 1:
        return f"{ratio:.1f}x faster here (p50)"
    return f"{1 / ratio:.1f}x slower here (p50; this CPU, not the target)"


def _loss_text(budget, loss):
    if budget.kind == "max_drop_points":
        return f"{-loss + 0.0:+.2f} points"  # + 0.0: no "-0.00"
    return f"perplexity {loss + 0.0:+.1f} %"


def _fit_text(v):
    targets = board_verdicts(v)
    fits = [t for t in targets if t.get("fits")]
    if not targets:
        return "no microcontroller checked"
    if not fits:
        return "fits none of " + ", ".join(t["target"] for t in targets)
    best = max(fits, key=lambda t: t.get("ram_margin_bytes", 0))
    others = [t["target"] for t in fits if t is not best]
    return (f"fits {best['target']} (RAM {best['ram_margin_bytes'] / 1024:.1f} KiB and flash "
            f"{best['flash_margin_bytes'] / 1024:.1f} KiB to spare)"
            + (f" and {', '.join(others)}" if others else ""))
