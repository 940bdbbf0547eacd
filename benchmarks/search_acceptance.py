"""Issue 11's acceptance figures for finished `search_digits` searches.

    python benchmarks/search_acceptance.py --searches=runs/acceptance/search_digits_seed0,...
        --hand=runs/acceptance/hand_seed{seed} [--runs=500]

For each search (one per seed; run them first with
`python -m pipeline.search --recipe=recipes/search_digits.yaml --workdir=DIR --set seed=N`):

- the baseline: the better TFLite test accuracy of the search's own float32
  file (its base run) and the default recipe's float32 file
  (`--hand`/default);
- the search's own pick (`best`, chosen on the validation split, less
  `search.select_margin`, or the least loss within budget when none clears
  it): its bytes, test accuracy and p50 against the goals. This is the
  verdict: nothing in it was chosen on test;
- for comparison, the smallest front variant within budget on the validation split whose
  raw file is at most 1/50 of the float32 file's bytes and whose test
  accuracy is within 1 point of the baseline (scored on test once);
- its p50 latency against the float32 file's, 1 thread, measured here in one
  process with the two files' runs interleaved (so load on the machine
  falls on both alike);
- whether the front dominates or equals every hand recipe run under `--hand`
  on (raw bytes, TFLite test accuracy): what each recipe ships (the
  variants of its last stage), and, stricter, every variant it exports
  (its float teacher's too). The split follows the seed, so run the hand
  recipes with the search's seed (`python -m pipeline --recipe=recipes/R.yaml
  --workdir=runs/acceptance/hand_seedN/R --set seed=N --set
  deploy.metadata=false --set deploy.micro=false`, as trials carry no
  metadata); another seed's runs are reported as only indicative;
- the search's trials, time in trials, and what the stage cache saved;
- how sure the pick's loss is: a 95 % paired bootstrap interval of its
  points below the baseline, resampling the test digits (both files scored
  on the same ones, from the hand default run's test_data), and over all
  searches the mean loss with its interval. One digit of 360 is 0.28
  points: a 1-point goal sits about two standard errors from zero.

Prints one block per search (and writes them to --json); exits 0 whatever
the verdicts.
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from pipeline.stats import paired_bootstrap  # noqa: E402


def hits(model_path, x, y):
    """Per-example top-1 hits of a TFLite file over (x, y) (export.benchmark.score_file)."""
    from export import benchmark
    return benchmark.score_file(model_path, x, y)["hits"]


def _load(path):
    with open(path) as f:
        return json.load(f)


def hand_points(hand_dir):
    """(recipe, variant, raw bytes, test accuracy, shipped) of every hand recipe's
    variants; `shipped`: the variant is of the recipe's last stage."""
    points = []
    for report_path in sorted(glob.glob(os.path.join(hand_dir, "*", "report.json"))):
        report = _load(report_path)
        recipe = os.path.basename(os.path.dirname(report_path))
        last = report["stages"][-1]["name"]
        for v in report["variants"]:
            if "error" not in v and v.get("accuracy") is not None:
                points.append((recipe, v["name"], v["size_bytes"], v["accuracy"],
                               v.get("stage") == last))
    return points


def judge(search_dir, hand_dir, hand, runs):
    """The verdicts for one search; `hand` is hand_points(hand_dir)."""
    record = _load(os.path.join(search_dir, "search.json"))
    base_report = _load(os.path.join(search_dir, "base", "report.json"))
    float32 = next(v for v in base_report["variants"] if v["format"] == "float32")
    float32_path = os.path.join(search_dir, "base", float32["path"])
    own = record["reference"]["test"]["accuracy"]
    default_float32 = next(v for v in _load(os.path.join(hand_dir, "default", "report.json"))[
        "variants"] if v["format"] == "float32")
    default = default_float32["accuracy"]
    baseline = max(own, default)
    baseline_path = (float32_path if own >= default
                     else os.path.join(hand_dir, "default", default_float32["path"]))
    front = [t for t in record["trials"] if t.get("pareto") and t.get("test")]
    size_goal = float32["size_bytes"] / 50
    # Only what the search judged within budget on the validation split may be
    # chosen: the front's members out of budget are scored on test too, and
    # picking one of them by its test figure would be selecting on test.
    qualifying = sorted((t for t in front if t["within_budget"]
                         and t["figures"]["size_bytes"] <= size_goal
                         and t["test"]["accuracy"] >= baseline - 0.01 - 1e-9),
                        key=lambda t: t["figures"]["size_bytes"])
    out = {"search": search_dir, "seed": base_report["recipe"].get("seed"),
           "baseline": baseline, "own_float32": own, "default_float32": default,
           "float32_bytes": float32["size_bytes"], "front": len(front),
           "effort": record.get("effort")}
    # Every front member, measured: bytes and accuracy against the goals, and
    # its p50 against the float32 file's in one interleaved run.
    from benchmarks.interleaved_latency import medians
    paths = []
    for t in front:
        trial_report = _load(os.path.join(search_dir, t["directory"], "report.json"))
        variant = next(v for v in trial_report["variants"] if v["name"] == t["variant"])
        paths.append(os.path.join(search_dir, t["directory"], variant["path"]))
    times = medians([float32_path] + paths, runs) if front else [None]
    out["front_members"] = [{
        "trial": t["number"], "params": t["params"], "bytes": t["figures"]["size_bytes"],
        "bytes_ratio": t["figures"]["size_bytes"] / float32["size_bytes"],
        "test_accuracy": t["test"]["accuracy"],
        "points_below_baseline": 100 * (baseline - t["test"]["accuracy"]),
        "p50_ms": ms, "float32_p50_ms": times[0], "latency_ratio": ms / times[0]}
        for t, ms in zip(front, times[1:])]
    out["float32_p50_ms"] = times[0]
    members = {m["trial"]: m for m in out["front_members"]}
    if record.get("best") in members:
        pick = dict(members[record["best"]])
        # False: no front trial cleared the margin; the least loss within budget.
        pick["clears_margin"] = record.get("best_clears_margin", True)
        pick["meets"] = {"bytes": pick["bytes"] <= size_goal,
                         "accuracy": pick["points_below_baseline"] <= 1 + 1e-7,
                         "latency": pick["latency_ratio"] <= 0.2}
        out["pick"] = pick
        test_dir = os.path.join(hand_dir, "default", "export", "test_data")
        if os.path.exists(os.path.join(test_dir, "x.npy")):
            pick_path = paths[[t["number"] for t in front].index(record["best"])]
            pick_hits, baseline_hits = _test_hits(test_dir, pick_path, baseline_path)
            if abs(pick_hits.mean() - pick["test_accuracy"]) > 1e-9:
                raise SystemExit(f"{search_dir}: the pick scores {pick_hits.mean():.4f} here but "
                                 f"{pick['test_accuracy']:.4f} in search.json: not the same "
                                 f"test split (are the hand runs of seed {out['seed']}?)")
            pick["hits"], pick["baseline_hits"] = pick_hits.tolist(), baseline_hits.tolist()
            _, pick["interval_low"], pick["interval_high"] = paired_bootstrap(
                baseline_hits, pick_hits)
    out["select_margin"] = record.get("select_margin", 0.0)
    if qualifying:
        out["chosen"] = next(m for m in out["front_members"]
                             if m["trial"] == qualifying[0]["number"])
    beaten = []
    for recipe, name, size, accuracy, shipped in hand:
        if not any(t["figures"]["size_bytes"] <= size and t["test"]["accuracy"] >= accuracy
                   for t in front):
            beaten.append({"recipe": recipe, "variant": name, "bytes": size,
                           "accuracy": accuracy, "shipped": shipped})
    out["hand_variants"] = len(hand)
    out["hand_shipped_variants"] = sum(1 for point in hand if point[-1])
    out["hand_not_dominated"] = beaten
    return out


def _test_hits(test_dir, *model_paths):
    """Per-example hits on the test split in `test_dir` of each file."""
    import numpy as np
    x = np.load(os.path.join(test_dir, "x.npy"), mmap_mode="r")
    y = np.load(os.path.join(test_dir, "y.npy"), mmap_mode="r")
    return [hits(path, x, y) for path in model_paths]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", required=True, help="comma-separated search workdirs")
    parser.add_argument("--hand", required=True, help="directory of hand-recipe runs "
                        "(one subdirectory per recipe, default/ among them); {seed} becomes "
                        "each search's seed (the test split follows the seed)")
    parser.add_argument("--runs", type=int, default=500, help="timed runs per file")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results = []
    for search_dir in args.searches.split(","):
        seed = _load(os.path.join(search_dir, "base", "report.json"))["recipe"].get("seed", 0)
        hand_dir = args.hand.format(seed=seed)
        hand_seed = _load(os.path.join(hand_dir, "default", "report.json"))["recipe"].get("seed", 0)
        result = judge(search_dir, hand_dir, hand_points(hand_dir), args.runs)
        # The split follows the seed: hand runs of another seed are scored on
        # other test digits, and the comparison is only indicative.
        result.update(hand_dir=hand_dir, hand_seed=hand_seed)
        results.append(result)
    for r in results:
        print(f"\n## {r['search']} (seed {r['seed']})")
        print(f"baseline {r['baseline']:.4f} (own float32 {r['own_float32']:.4f}, default "
              f"{r['default_float32']:.4f}); float32 file {r['float32_bytes']:,} B; "
              f"front {r['front']} trial(s)")
        p = r.get("pick")
        if p:
            verdict = "MET" if all(p["meets"].values()) else "missed: " + ", ".join(
                k for k, ok in p["meets"].items() if not ok)
            print(f"the search's pick (best.yaml, validation, margin {r['select_margin']:g}"
                  + ("" if p.get("clears_margin", True) else
                     "; none cleared it: the least loss within budget") + "): "
                  f"trial {p['trial']}: {p['bytes']:,} B ({p['bytes_ratio']:.4f}x), test "
                  f"{p['test_accuracy']:.4f} ({p['points_below_baseline']:+.2f} points below "
                  f"baseline), p50 {p['latency_ratio']:.3f}x: {verdict}")
            if "interval_low" in p:
                print(f"  95 % paired bootstrap interval of the points below baseline (test "
                      f"digits resampled): {p['interval_low']:+.2f} to {p['interval_high']:+.2f}")
        else:
            print("the search's pick: none (no front trial within the budget and the limits)")
        c = r.get("chosen")
        if c:
            print(f"smallest qualifying front file within budget: trial {c['trial']} {json.dumps(c['params'])}")
            print(f"  raw int8 {c['bytes']:,} B = {c['bytes_ratio']:.4f}x float32 (goal <= 0.02); "
                  f"test accuracy {c['test_accuracy']:.4f} ({c['points_below_baseline']:+.2f} "
                  f"points below baseline, goal <= 1); p50 {c['p50_ms']:.4f} ms vs "
                  f"{c['float32_p50_ms']:.4f} ms = {c['latency_ratio']:.3f}x (goal <= 0.2)")
        else:
            print("smallest qualifying front file within budget: none meets 1/50 of the bytes "
                  "within 1 point")
        print("front (test split; p50 interleaved with the float32 file's):")
        for m in sorted(r["front_members"], key=lambda m: m["bytes"]):
            print(f"  trial {m['trial']}: {m['bytes']:,} B ({m['bytes_ratio']:.4f}x), test "
                  f"{m['test_accuracy']:.4f} ({m['points_below_baseline']:+.2f} points below "
                  f"baseline), p50 {m['p50_ms']:.4f} ms ({m['latency_ratio']:.3f}x); "
                  f"{json.dumps(m['params'])}")
        print(f"hand recipes: {r['hand_dir']} (seed {r['hand_seed']}"
              + (")" if r["hand_seed"] == r["seed"] else
                 ": another seed's test split, so only indicative)"))
        shipped = [h for h in r["hand_not_dominated"] if h["shipped"]]
        print(f"hand recipes' shipped variants (last stage) not dominated by the front: "
              f"{len(shipped)} of {r['hand_shipped_variants']}; of all their variants: "
              f"{len(r['hand_not_dominated'])} of {r['hand_variants']}" + "".join(
                  f"\n  {h['recipe']}/{h['variant']}{'' if h['shipped'] else ' (not shipped)'}: "
                  f"{h['bytes']:,} B, {h['accuracy']:.4f}" for h in r["hand_not_dominated"]))
        e = r.get("effort") or {}
        print(f"effort: {e.get('trials')} trials, {e.get('trial_seconds', 0):.0f} s in trials; "
              f"stage cache {e.get('stages_from_cache')} stage(s), "
              f"{e.get('cache_saved_seconds', 0):.0f} s of training not redone; "
              f"{e.get('repeats_not_rerun')} repeat(s)")
    paired = [r["pick"] for r in results if r.get("pick") and "hits" in r["pick"]]
    if len(paired) > 1:
        import numpy as np
        points, low, high = paired_bootstrap([np.array(p["baseline_hits"]) for p in paired],
                                            [np.array(p["hits"]) for p in paired])
        print(f"\nover {len(paired)} searches: the picks' mean loss {points:+.2f} points below "
              f"baseline (95 % paired bootstrap interval {low:+.2f} to {high:+.2f}); met on "
              f"{sum(all(p['meets'].values()) for p in paired)} of {len(paired)}")
    if args.json:
        from pipeline.files import atomic_write_text
        atomic_write_text(args.json, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
