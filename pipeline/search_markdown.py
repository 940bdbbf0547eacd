"""search.md: the search's trials, its front and its pick, as a Markdown table."""
import json

from pipeline.recipe import AT_LEAST_LIMITS


def to_markdown(record):
    """search.md's text for a search record (search.json's content)."""
    objectives = record["objectives"]
    budget_key, budget = next(iter(record["budget"].items()))
    ref = record["reference"]
    lines = ["# greenlite search", "",
             f"Budget: {budget_key} {budget:g} against `{ref['variant']}` (accuracy "
             f"{ref['accuracy']:.4f}, {ref['size_bytes']:,} bytes). Objectives, minimized: "
             f"{', '.join(objectives)} (measured on each trial's exported file). Trials are "
             "judged on the validation split; the front's files are scored on the test split "
             "once, at the end (with an accuracy budget, the test loss's 95 % paired bootstrap "
             "interval follows it). **Pareto**: not beaten on every objective and the loss by "
             "another trial; `best` is the "
             + ("least loss (ties: the lower validation cross-entropy, then the smaller)"
                if record.get("select") == "most_accurate" else f"smallest {objectives[0]}")
             + " among the front's trials within budget"
             + (f" less a margin of {record['select_margin']:g} (the validation split's noise)"
                if record.get("select_margin") else "")
             + (" and within the limits (" + ", ".join(
                 f"{k} at {'least' if k in AT_LEAST_LIMITS else 'most'} {figure(v)}"
                 for k, v in record["limits"].items()) + ")"
                if record.get("limits") else "") + "."
             + (f" `best.yaml` reproduces trial {record['best']}."
                if record.get("best") is not None else "")
             + (" No trial cleared the margin: it is the least loss within budget, "
                "to confirm on more data." if record.get("best_clears_margin") is False
                else ""), "",
             "| trial | values | variant | " + " | ".join(objectives)
             + " | loss (validation) | within budget | Pareto | loss (test, front only) |",
             "|---|---|---|" + "---:|" * len(objectives) + "---:|---|---|---:|"]
    for r in record["trials"]:
        if r.get("error") or not r.get("figures"):
            lines.append(f"| {r['number']} | `{json.dumps(r['params'])}` | failed: "
                         f"{r.get('error')} |" + " |" * (len(objectives) + 4))
            continue
        lines.append(f"| {r['number']} | `{json.dumps(r['params'])}` | {r['variant']} | "
                     + " | ".join(figure(r["figures"][k]) for k in objectives)
                     + f" | {r['loss']:+.2f} | {'yes' if r['within_budget'] else 'no'}"
                     + ("" if r.get("within_limits", True) else ", over a limit") + " | "
                     + ("**yes**" if r["pareto"] else "") + " | "
                     + (_test_loss(r["test"]) if r.get("test") else "") + " |")
    effort = record.get("effort")
    if effort:
        lines += ["", f"Effort: {effort['trials']} trial(s) measured, "
                  f"{effort['trial_seconds']:.0f} s "
                  f"in trials; the stage cache supplied {effort['stages_from_cache']} stage(s) "
                  f"({effort['cache_saved_seconds']:.0f} s of training not redone); "
                  f"{effort['repeats_not_rerun']} repeated value set(s) took an earlier "
                  "trial's figures."]
    lines += ["", "![trials: loss against each objective](search.png)"]
    return "\n".join(lines) + "\n"


def _test_loss(test):
    """The test loss, and its 95 % interval where the budget is in accuracy points."""
    interval = test.get("loss_interval")
    return f"{test['loss']:+.2f}" + (f" ({interval[0]:+.2f} to {interval[1]:+.2f})"
                                     if interval else "")


def figure(value):
    """12,345 for counts (bytes, MACs), 4 significant digits for the rest."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4g}"
