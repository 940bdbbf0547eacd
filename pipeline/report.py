"""report.json, report.md, report.html and pareto.png: every variant side by side.

report.json schema (version 1), stable for tools and dashboards:
    schema_version  1
    recipe          the validated recipe as plain values
    data            {description, task, preprocessing, input_shape, num_classes,
                     train, val, test}: `preprocessing` is what an app must do to
                     raw inputs; each variant's `input` gives the file's input
                     dtype, shape, and (int8) scale and zero point
    baseline        {stage, keras_accuracy, keras_split, accuracy, params, float32_variant}:
                    the first stage's Keras float model and its float32 file
    stages[]        {name, type, dir, model_path, seconds, params, keras_accuracy,
                     keras_split (test, or val in a run judged on validation),
                     distribute{strategy, replicas} (the tf.distribute strategy
                     the stage's model was made in),
                     metrics, claims{sparsity, clusters, preserve_zero} or null
                     (what the stage promises about its kernels), energy{seconds, energy_kwh, emissions_kg, cpu_power_w,
                     ram_power_w, mode, method, ...}}
    variants[]      {name, stage, format, path, size_bytes, gzip_bytes, accuracy,
                     latency_ms{p50, p90, p99, mean}, init_ms, first_inference_ms,
                     interpreter, benchmark_path,
                     all_threads{threads, p50_ms, p90_ms} and onnx_ops{op: count}
                     (ONNX files: ONNX Runtime at every core, the graph's ops),
                     gzip_ratio_vs_baseline (baseline float32 gzip / this gzip),
                     joules_per_inference, co2_g_per_million_inferences,
                     extra_emissions_kg (its compression stages),
                     payback_inferences (null: never pays back),
                     and where the stage claims structure, measured in the file:
                     sparsity (over the pruned kernels), max_unique_per_channel
                     and entropy_bits_per_weight (over the clustered, ternary or
                     binary kernels), weights{layer: {dtype, size, sparsity, unique,
                     max_unique_per_channel, entropy_bits}}, violations[];
                     float_layers{layer: reason} for QAT stages,
                     runtimes{"tflite-runtime 2.14.0": {loads, reason, median_ms,
                     delegated, ops, and with test data: accuracy, perplexity,
                     reference{accuracy, perplexity} (LiteRT's), max_abs_diff,
                     agrees}} once the runtime gate has run,
                     float_op_types{op: count} for int16x8_mixed (the ops
                     it computes in float),
                     attention_mask_bounded{layers, mask_value} when the
                     converter bounded a -1e9 attention mask,
                     stripped_bytes (names etc. removed, export.strip) and
                     claims_unchecked (why the file's layers were not checked),
                     doctor{budget, keras, outliers[], worst[], before, fix{variant,
                     changes[], int16_ops[], float_ops[], after, within_budget}}
                     for calibrated variants (export/doctor.py), or
                     doctor_error when the diagnosis failed}
                    or  a doctor's fix {name, stage, format: int8_mixed, path,
                     changes[], float_ops[], within_budget, and the figures}
                     micro{checked, runs, flash_bytes, arena_bytes, fails_at_bytes,
                     recorded_bytes, missing_ops[], examples, micro{accuracy, perplexity},
                     litert{...}, max_abs_diff, top1_agreement, targets[{target,
                     fits, ram_bytes, flash_bytes, ram_margin_bytes,
                     flash_margin_bytes, basis (tflite-micro, or the Vela build an
                     Ethos-U board is judged on), why}]} for full-integer variants,
                     c_array{source, header, symbol},
                     metadata{written, bytes, labels, mean, std, range} or
                     {written: false, reason},
                     npu{accelerator: {compiled, accelerator, system_config,
                     memory_mode, clock_mhz, sram_bytes, flash_bytes, dram_bytes,
                     cycles_npu, cycles_total, inference_ms, inferences_per_s, macs,
                     npu_passes, weight_bytes, encoded_weight_bytes, cpu_ops{op: n},
                     path, source} or {compiled: false, reason}} (export/vela.py),
                     mcu{board: {energy_uj{low, mid, high}, latency_ms{low, mid, high},
                     battery{days{low, mid, high}, inference_share, duty}, source,
                     leave_one_out_error}} for full-integer variants: estimated from the
                     board's MLPerf Tiny measurements (pipeline/device_energy.py),
                     generation{path, bundle_bytes, model_bytes, context,
                     prefill_lengths, max_tokens, matches_keras, keras_agreement,
                     continuations[{prompt, text, keras}], window_max_abs_difference,
                     quality{mean_kl, max_kl, top1_agreement, positions, against},
                     benchmark{threads_1, threads_all: {threads, prompt_tokens,
                     generated_tokens, time_to_first_token_ms, prefill_tokens_per_s,
                     decode_tokens_per_s, peak_rss_mb, source}}, decode_speed_vs_float32,
                     slower_than_float32, joules_per_generated_token} or {error} for a
                     language model's variants with a generative twin (pipeline/generation.py),
                     deploy{runtimes{name: verdict}, xnnpack, micro_fit{target:
                     verdict}, metadata, blockers[]} (pipeline/deploy.py)}
                    or  {name, stage, format, path, error}
    recommendation  {variant (null: none within the budget), within_budget, text}: the
                     file to ship, the fewest device bytes within export's budget
                     (pipeline/recommend.py); report.md and .html open with its text
    energy          {tracked, country_iso_code, grid_intensity_g_per_kwh,
                     grid_intensity_source, mode (of the training figures: "measured"
                     with RAPL, else "estimated"), inference_mode ("estimated",
                     always), cpu_tdp_generic, training_method, inference_method,
                     training_energy_kwh, training_emissions_kg, payback_baseline}
    seconds         wall time of the whole run
    deploy_data     {task, class_names, normalization, description,
                     preprocessing, split, model}: what pipeline.deploy reads
Paths are relative to the run directory; accuracy is measured on the TFLite
file over the test split; latencies are milliseconds.
"""
import base64
import html
import json
import os
import re

from export import formats
from export.budget import Budget
from pipeline import energy as energy_lib
from pipeline import plots
from pipeline.files import atomic_write_bytes, atomic_write_text
from pipeline.layers import describe_skipped
from pipeline.recommend import board_verdicts, recommend
from pipeline.sparse_inference import note as sparse_note

SCHEMA_VERSION = 1
# The points column: accuracy against the baseline's, as the budgets measure it.
ACCURACY = Budget("max_drop_points", 0.0)


def keras_split(record):
    """The split a stage's (or the baseline's) Keras figures are on; records
    written before keras_split existed are on the test split."""
    return record.get("keras_split", "test")


def build(recipe, data, stage_records, variants, seconds, deploy_data=None, keras3_origin=None,
          model_notes=()):
    """Assembles the report dict. `keras3_origin`: models.keras3.Keras3Origin of a
    model written by Keras 3 (None for the zoo and tf_keras files); `model_notes`:
    what was found and done to the model before training (pipeline/intake.py)."""
    from pipeline.verdicts import summary
    first = stage_records[0]
    reference = next((v for v in variants if v["stage"] == first["name"]
                      and v["format"] == "float32" and "error" not in v), None)
    for v in variants:
        if reference and "error" not in v:
            v["gzip_ratio_vs_baseline"] = reference["gzip_bytes"] / v["gzip_bytes"]
        if "error" not in v:
            v["deploy"] = summary(v, recipe.benchmark.check_tflite_runtime)
    energy = energy_lib.account(recipe.energy, stage_records, variants,
                                recipe.benchmark.num_threads, baseline=reference)
    report = {
        "schema_version": SCHEMA_VERSION,
        "recipe": recipe.to_dict(),
        "data": {"description": data.description, "task": data.task,
                 "preprocessing": data.preprocessing,
                 "input_shape": list(data.input_shape),
                 "num_classes": data.num_classes, "train": len(data.train),
                 "val": len(data.val), "test": len(data.test), "streamed": data.streamed},
        "baseline": {"stage": first["name"], "keras_accuracy": first["keras_accuracy"],
                     "keras_split": keras_split(first),
                     "accuracy": first["keras_accuracy"], "params": first["params"],
                     "float32_variant": reference["name"] if reference else None},
        "model": {"name": recipe.model.name,
                  "keras3": keras3_origin.to_dict() if keras3_origin else None,
                  "keras3_text": keras3_origin.describe() if keras3_origin else None,
                  "notes": list(model_notes)},
        "stages": stage_records,
        "variants": variants,
        "energy": energy,
        "seconds": seconds,
        "deploy_data": deploy_data,
    }
    report["recommendation"] = recommend(report)
    return report


def write(workdir, report):
    """Writes report.json, pareto.png, report.md and report.html, each atomically."""
    png = plots.pareto_png(report["variants"], f"greenlite: {report['recipe']['name']}")
    atomic_write_bytes(os.path.join(workdir, "pareto.png"), png)
    atomic_write_text(os.path.join(workdir, "report.json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(os.path.join(workdir, "report.md"), to_markdown(report))
    atomic_write_text(os.path.join(workdir, "report.html"), to_html(report, png))


def _stage_columns(lm):
    """[(header, cell(stage record) -> str)] of the stage table."""
    energy = lambda s: s.get("energy", {})
    return ([("stage", lambda s: s["name"]), ("type", lambda s: s["type"]),
             ("time (s)", lambda s: f"{s['seconds']:.1f}"),
             ("parameters", lambda s: f"{s['params']:,}"),
             ("Keras accuracy", lambda s: f"{s['keras_accuracy']:.4f} "
                                          f"({keras_split(s)})")]
            + ([("Keras perplexity", lambda s: _num(s.get("keras_perplexity"), ".3f"))]
               if lm else [])
            + [("energy (kWh)", lambda s: _num(energy(s).get("energy_kwh"), ".3g")),
               ("CO2e (kg)", lambda s: _num(energy(s).get("emissions_kg"), ".3g")),
               ("power", lambda s: energy(s).get("mode", "not tracked"))])


def _variant_columns(report):
    """[(header, cell(variant) -> str)] of the variant table (variants that converted)."""
    base = report["baseline"]
    lm = report["data"].get("task") == "language_model"
    float32 = {v["stage"]: v for v in report["variants"]
               if v["format"] == "float32" and "error" not in v}
    runtimes = sorted({r for v in report["variants"] for r in v.get("runtimes", {})})

    def size_vs_stage_float32(v):
        ref = float32.get(v["stage"])
        return f"{v['size_bytes'] / ref['size_bytes']:.3f}x" if ref else ""

    baseline32 = float32.get(base["stage"])

    def size_vs_baseline(v):
        return f"{v['size_bytes'] / baseline32['size_bytes']:.3f}x" if baseline32 else ""

    latency = lambda q: (f"{q} ms (device)", lambda v: f"{v['latency_ms'][q]:.4f}")
    # A server's files (ONNX, TensorRT) beside the device's: say what ran each one.
    servers = _has_server_files(report)
    # What the device holds and spends first, then what the download costs.
    columns = [
        ("variant", lambda v: v["name"]), ("format", lambda v: v["format"])] + (
        [("runtime", lambda v: v.get("interpreter") or ""),
         ("p50 ms, all threads", lambda v: (
             f"{v['all_threads']['p50_ms']:.4f} ({v['all_threads']['threads']})"
             if v.get("all_threads") else ""))] if servers else []) + [
        ("file bytes (device)", lambda v: f"{v['size_bytes']:,}"),
        ("file vs stage float32 (device)", size_vs_stage_float32),
        ("file vs baseline float32 (device)", size_vs_baseline),
        ("MACs (device)", lambda v: f"{v['macs']:,}" if v.get("macs") else ""),
        ("gzip bytes (download)", lambda v: f"{v['gzip_bytes']:,}"),
        ("gzip smaller than baseline float32 (download)",
         lambda v: (f"{v['gzip_ratio_vs_baseline']:.1f}x" if "gzip_ratio_vs_baseline" in v else "")),
        ("accuracy (file)" if servers else "TFLite accuracy", lambda v: f"{v['accuracy']:.4f}"),
        ("vs baseline (points)",
         lambda v: f"{-ACCURACY.loss(v, {'accuracy': base['keras_accuracy']}):+.2f}"),
        ("sparsity", lambda v: _num(v.get("sparsity"), ".4f")),
        ("unique/channel (bits/weight)", _unique),
        latency("p50"), latency("p90"), latency("p99"),
        ("J/inference (device, estimated)", lambda v: _num(v.get("joules_per_inference"), ".3g")),
        ("gCO2e per 1M inferences",
         lambda v: _num(v.get("co2_g_per_million_inferences"), ".3g")),
        ("payback (inferences)", _payback),
    ]
    if lm:
        length = report["data"]["input_shape"][0]
        columns += [("TFLite perplexity", lambda v: _num(v.get("perplexity"), ".3f")),
                    ("ms per token (p50 / length)",
                     lambda v: f"{v['latency_ms']['p50'] / length:.5f}")]
    columns += [(f"loads on {r}", lambda v, r=r: _runtime(v.get("runtimes", {}).get(r))
                 if formats.on_device(v["format"]) else "n/a (not a .tflite file)")
                for r in runtimes]
    return columns


def tables(report):
    """[(title, text, headers, rows)]: what report.md and report.html show."""
    lm = report["data"].get("task") == "language_model"
    stage_columns = _stage_columns(lm)
    variant_columns = _variant_columns(report)
    variant_rows = []
    for v in report["variants"]:
        if "error" in v:  # name, format, then the reason across the rest
            variant_rows.append([v["name"], v["format"], f"failed: {v['error']}"]
                                + [""] * (len(variant_columns) - 3))
        else:
            variant_rows.append([cell(v) for _, cell in variant_columns])
    e = report.get("energy", {})
    energy_text = (
        f"Grid: {e['country_iso_code']} at {e['grid_intensity_g_per_kwh']:.0f} gCO2e/kWh "
        f"({e['grid_intensity_source']}). Training: {e['training_energy_kwh']:.3g} kWh, "
        f"{e['training_emissions_kg']:.3g} kg CO2e. Training energy: {e['training_method']}. "
        f"Energy per inference: {e['inference_method']}. Payback: inferences after which a "
        f"variant's compression stages' CO2 is repaid by its savings per inference against "
        f"`{e['payback_baseline']}`."
        if e.get("tracked") else f"Energy not tracked: {e.get('reason', '')}.")
    return [
        ("Stages", "Energy and CO2 from CodeCarbon (offline), per stage."
         + (" Accuracy is next-byte accuracy." if lm else ""),
         [h for h, _ in stage_columns],
         [[cell(s) for _, cell in stage_columns] for s in report["stages"]]),
        ("TFLite variants",
         "Accuracy is measured on the .tflite file over the "
         + ("validation" if report.get("recipe", {}).get("benchmark", {}).get("split") == "val"
            else "test") + " split; latency is the "
         "interpreter's invoke() time in ms. *(device)*: what the device holds and spends (the "
         "file's bytes in flash, its MACs, its latency and energy); *(download)*: what "
         "shipping it costs (gzip). *gzip smaller*: the baseline's float32 file's gzip "
         "size over this file's. Sparsity and unique values per channel are measured in the "
         "file's weight buffers. "
         + ("ONNX files (`onnx_*`) are run by ONNX Runtime on this CPU at batch 1, as a "
            "server's CPU runs them, scored on the same examples; they are a server's files, "
            "not a device's, and are never the recommended file. "
            if _has_server_files(report) else "")
         + energy_text,
         [h for h, _ in variant_columns], variant_rows),
    ] + (_doctor_table(report) + _generation_table(report) + _coverage(report)
         + _deploy_table(report)
         + _npu_table(report) + _mcu_table(report))


def _generation_table(report):
    """Each language-model variant's LiteRT-LM bundle: checks, quality and speed."""
    rows, continuations = [], []
    for v in report["variants"]:
        g = v.get("generation")
        if not g:
            continue
        if "error" in g:
            rows.append([v["name"], f"failed: {g['error']}"] + [""] * 9)
            continue
        q, b = g.get("quality", {}), g.get("benchmark", {})
        one, every = b.get("threads_1", {}), b.get("threads_all", {})
        joules = g.get("joules_per_generated_token")
        rows.append([
            v["name"], f"{g['bundle_bytes']:,}",
            "yes" if g["matches_keras"] else f"{100 * g['keras_agreement']:.0f} % of tokens",
            _num(q.get("mean_kl"), ".4f"), _num(q.get("top1_agreement"), ".4f"),
            _num(one.get("time_to_first_token_ms"), ".3f"),
            _num(one.get("prefill_tokens_per_s"), ",.0f"),
            _num(one.get("decode_tokens_per_s"), ",.0f"),
            _num(every.get("decode_tokens_per_s"), ",.0f"),
            _num(one.get("peak_rss_mb"), ".1f"),
            f"{joules * 1e6:,.1f}" if joules else ""])
        for c in g.get("continuations", [])[:1]:
            continuations.append(f"`{v['name']}`: {c['prompt']!r} → {c['text']!r}")
    if not rows:
        return []
    threads = next((v["generation"]["benchmark"]["threads_all"].get("threads")
                    for v in report["variants"]
                    if "threads_all" in ((v.get("generation") or {}).get("benchmark") or {})),
                   None)
    slower = [f"`{v['name']}` {v['generation']['slower_than_float32']}"
              for v in report["variants"] if (v.get("generation") or {}).get(
                  "slower_than_float32")]
    text = (
        "Each variant as LiteRT-LM runs it on a phone: `export/<variant>.litertlm` (the "
        "generative file with prefill and decode signatures over an external KV cache, its "
        "tokenizer and metadata), loaded and run in LiteRT-LM on this CPU before it is "
        "reported. *Greedy = Keras*: the bundle's greedy continuation of three prompts equals "
        "the Keras model's (required of float32; for the others, the share of tokens before "
        "the first difference). *KL* (nats) and *top-1*: the next-token distributions against "
        "the Keras model the file was made from, over test windows. Timings are LiteRT-LM's "
        "own (median of its benchmark over several generations, this workstation's CPU, not a "
        "phone's). *uJ/token*: an estimate, one thread's share of the CPU's TDP times the "
        "decode time per token (as energy per inference)."
        + (f" Slower than float32 here: {'; '.join(slower)}." if slower else "")
        + (" Greedy continuations: " + "; ".join(continuations) + "." if continuations else ""))
    return [("Generation (LiteRT-LM)", text,
             ["variant", "bundle bytes", "greedy = Keras", "KL", "top-1", "first token ms",
              "prefill tok/s", "decode tok/s (1 thread)",
              f"decode tok/s ({threads or 'all'} threads)", "peak MB", "uJ/token (est.)"],
             rows)]


def compact(report):
    """(headers, rows) of the table at the top: per converted file, what the device
    holds and spends, its score, and the boards it fits."""
    lm = report["data"].get("task") == "language_model"
    headers = ["variant", "file bytes (device)", "TFLite perplexity" if lm else "TFLite accuracy",
               "p50 ms (this CPU)", "fits"]
    rows = []
    for v in report["variants"]:
        if "error" in v:
            rows.append([v["name"], "", "", "", f"failed: {v['error']}"])
            continue
        targets = board_verdicts(v)
        fits = ", ".join(t["target"] for t in targets if t["fits"]) or (
            "none" if targets else "not checked")
        if not formats.on_device(v["format"]):
            fits = f"a server's file ({v.get('interpreter')})"
        score = _num(v.get("perplexity"), ".3f") if lm else f"{v['accuracy']:.4f}"
        rows.append([v["name"], f"{v['size_bytes']:,}", score,
                     f"{v['latency_ms']['p50']:.4f}", fits])
    return headers, rows


def _has_server_files(report):
    """The run exported ONNX files or TensorRT engines beside its .tflite files."""
    return any(not formats.on_device(v["format"]) for v in report["variants"])


def _coverage(report):
    """The kernel coverage table (pipeline/coverage.py), where the run checked runtimes."""
    from pipeline.coverage import coverage_table
    table = coverage_table(report)
    if table is None:
        return []
    return [("Kernel coverage",
             "Which ops of each file have no kernel, or fall back, on each runtime checked: "
             "LiteRT with XNNPACK on this CPU (ops left to the builtin kernels), the older "
             "runtimes of the runtime gate, tflite-micro (missing ops), each Ethos-U "
             "accelerator (Vela's ops left on the Cortex-M CPU). The last column names the "
             "places the recipe ships to (deploy.targets, deploy.npu) where the file cannot "
             "run, or not whole on the NPU.", *table)]


def _deploy_table(report):
    """Per variant: the runtimes it runs on, microcontroller fit and Android metadata."""
    variants = [v for v in report["variants"] if "deploy" in v and formats.on_device(v["format"])]
    if not any(v.get("micro") or v.get("metadata") for v in variants):
        return []
    targets = list(dict.fromkeys(t["target"] for v in variants
                                 for t in (v.get("micro") or {}).get("targets", [])))
    rows = []
    for v in variants:
        m, block = v.get("micro") or {}, v["deploy"]
        runs = m.get("runs")
        scored = runs and "micro" in m and "litert" in m
        rows.append(
            [v["name"], "yes" if runs else ("NO" if m.get("checked") else "not checked"),
             f"{m['arena_bytes']:,}" if runs else "", f"{m['flash_bytes']:,}" if m.get(
                 "flash_bytes") else "",
             (f"{m['micro']['accuracy']:.4f} / {m['litert']['accuracy']:.4f} "
              f"({m['examples']})") if scored else "",
             ", ".join(m.get("missing_ops", [])) or ("none" if m.get("checked") else "")]
            + [next((("fits" if t["fits"] else "NO") for t in m.get("targets", [])
                     if t["target"] == name), "") for name in targets]
            + [str(block.get("xnnpack") or ""),
               "yes" if block["metadata"] else "no",
               "; ".join(block["blockers"]) or "none"])
    return [("Deployment",
             "Microcontroller: the file run in tflite-micro (its reference kernels); *arena* is "
             "the smallest tensor arena it runs in (measured, 16-byte steps), *flash* the file's "
             "bytes; accuracy from the micro runtime against LiteRT's on the same examples. "
             "Targets: fits when the arena fits in RAM and the file in flash, with no op missing "
             "(margins in report.json; the application needs RAM too). Metadata: TFLite "
             "metadata with normalization and labels, for Android Studio and the Task Library.",
             ["variant", "runs on tflite-micro", "arena (B)", "flash (B)",
              "micro / LiteRT accuracy (examples)", "ops missing on micro"]
             + [f"fits {t}" for t in targets]
             + ["XNNPACK", "Android metadata", "what blocks"], rows)]


def _mcu_table(report):
    """Each full-integer file's latency, energy and battery life on MLPerf Tiny's boards."""
    rows, duty = [], None
    for v in report["variants"]:
        for name, m in (v.get("mcu") or {}).items():
            e, t, days = m["energy_uj"], m["latency_ms"], m["battery"]["days"]
            duty = m["battery"]["duty"]
            rows.append([v["name"], name, f"{e['mid']:,.1f} ({e['low']:,.1f}-{e['high']:,.1f})",
                         f"{t['mid']:,.2f} ({t['low']:,.2f}-{t['high']:,.2f})",
                         f"{days['mid']:,.0f} ({days['low']:,.0f}-{days['high']:,.0f})",
                         f"{100 * m['battery']['inference_share']:.0f} %",
                         f"±{100 * m['leave_one_out_error']:.0f} %"
                         if m.get("leave_one_out_error") is not None else "", m["source"]])
    if not rows:
        return []
    return [("Microcontrollers (estimated)",
             "Latency and energy per inference on each board, *estimated* from the file's MACs "
             "and the board's MLPerf Tiny measurements of four reference models (their "
             "per-MAC costs: the middle is their geometric mean, the range their spread); "
             "*held out*: how far this rule misses a reference model it was not given, on "
             "average. Battery: days on "
             f"{duty['battery_mah']:g} mAh at {duty['voltage']:g} V running "
             f"{duty['inferences_per_day']:,.0f} inferences a day and sleeping at "
             f"{duty['sleep_ua']:g} uA in between (deploy.duty, assumptions to set); share: "
             "the inferences' part of the day's energy.",
             ["variant", "board", "uJ per inference", "ms per inference", "battery days",
              "inference share", "held out", "source"], rows)]


def _npu_table(report):
    """Each full-integer file compiled by Vela for each Ethos-U accelerator."""
    rows = []
    for v in report["variants"]:
        for accelerator, n in (v.get("npu") or {}).items():
            if not n.get("compiled"):
                continue
            rows.append([v["name"], accelerator, n["system_config"], f"{n['clock_mhz']:g}",
                         f"{n['sram_bytes']:,}",
                         f"{n['flash_bytes']:,}" if n["flash_bytes"] else f"{n['dram_bytes']:,} (DRAM)",
                         f"{n['cycles_total']:,}", f"{n['inference_ms']:.4f}",
                         f"{n['inferences_per_s']:,.0f}",
                         f"{n['weight_bytes']:,} -> {n['encoded_weight_bytes']:,}",
                         ", ".join(f"{op} x{c}" for op, c in n["cpu_ops"].items()) or "none"])
    if not rows:
        return []
    return [("NPU (Arm Ethos-U, Vela)",
             "Each full-integer file compiled by Arm's Vela for the accelerator, with the system "
             "configuration named (its clock and memories): SRAM and flash (or DRAM) the NPU "
             "uses, total cycles and inference time with memory accesses, and the ops left to "
             "the Cortex-M CPU. *Estimates of Vela's performance model, not measurements on "
             "silicon.* Weights: the file's bytes, then Vela's encoding (zero runs and repeated "
             "values cost less: pruned and clustered files shrink).",
             ["variant", "accelerator", "system config", "clock (MHz)", "SRAM (B)",
              "flash (B)", "cycles", "inference (ms)", "inferences/s", "weights -> encoded (B)",
              "ops on the CPU"], rows)]


def _doctor_table(report):
    """The quantization doctor's findings (export/doctor.py), if it examined a variant."""
    rows = []
    for v in report["variants"]:
        record = v.get("doctor")
        if not record:
            continue
        for o in record["outliers"]:
            rows.append([v["name"], "range outlier", o["tensor"], o["layer"], o["op"],
                         f"calibrated [{o['range'][0]:.3g}, {o['range'][1]:.3g}], float "
                         f"99.9th percentile {_num(o['float_p999'], '.3g')}"])
        for w in record["worst"][:5]:
            rows.append([v["name"], "error", w["tensor"], w["layer"], w["op"],
                         f"RMSE/scale {w['rmse_over_scale']:.3g}"])
        before = record["before"]
        budget = record["budget"]
        fix = record.get("fix")
        summary = (f"accuracy {before['accuracy']:.4f}, perplexity {before['perplexity']:.4g} "
                   f"({before['drop_points']:+.2f} points, {before['rise_percent']:+.1f} % "
                   f"against Keras); budget {budget['kind']} {budget['value']:g}")
        rows.append([v["name"], "file", "", "", "", summary])
        if isinstance(fix, dict):
            for change in fix["changes"]:
                rows.append([fix["variant"], "fix", "", "", "", change])
            for op in fix.get("int16_ops", []):
                rows.append([fix["variant"], "int16", op["tensor"], op["layer"], op["op"],
                             f"no int16 kernel runs it: {op['error']}" if "error" in op else
                             f"{op['bytes']:+,} bytes, {op['latency_ms']:+.3f} ms p50"])
            for op in fix["float_ops"]:
                rows.append([fix["variant"], "kept float", op["tensor"], op["layer"], op["op"],
                             f"{op['bytes']:+,} bytes, {op['latency_ms']:+.3f} ms p50"])
            after = fix["after"]
            rows.append([fix["variant"], "result", "", "", "",
                         f"accuracy {after['accuracy']:.4f}, perplexity {after['perplexity']:.4g}"
                         f" ({after['drop_points']:+.2f} points, {after['rise_percent']:+.1f} %): "
                         + ("within budget" if fix["within_budget"] else "**outside budget**")])
        elif fix:
            rows.append([v["name"], "fix", "", "", "", fix])
    if not rows:
        return []
    return [("Quantization doctor",
             "The quantization doctor (export/doctor.py): range outliers (a calibrated range of at least "
             "1e4, or 100x the float values' 99.9th percentile) and the largest per-tensor "
             "errors against float (RMSE / scale; rounding alone gives 0.29), with the Keras "
             "layer of each tensor; a file outside its budget is fixed into a new variant.",
             ["variant", "finding", "tensor", "Keras layer", "op", "figures"], rows)]


def notes(report):
    """Lines about float layers, failed checks and skipped layers."""
    out = []
    for v in report["variants"]:
        if v.get("float_layers") and v["format"] in formats.FORMATS and formats.get(
                v["format"]).calibrated:
            # QAT's float layers are not float in a calibrated file: the converter
            # quantizes them too, from calibration alone, without QAT's training.
            out.append(f"`{v['name']}`: QAT trained these layers without simulated "
                       "quantization; this file's converter quantized them from calibration "
                       "alone: " + "; ".join(describe_skipped(v["float_layers"])))
        if v.get("float_op_types"):
            out.append(f"`{v['name']}` computes these ops in float (no int16 kernel, or "
                       "ai-edge-quantizer does not quantize them): " + ", ".join(
                           f"{op} x{n}" for op, n in v["float_op_types"].items()))
        if v.get("doctor_error"):
            out.append(f"`{v['name']}`: the quantization doctor could not examine it: "
                       f"{v['doctor_error']}")
        if v.get("attention_mask_bounded"):
            bounded = v["attention_mask_bounded"]
            out.append(f"`{v['name']}`: before conversion, the attention mask of "
                       + ", ".join(f"`{n}`" for n in bounded["layers"])
                       + f" was bounded to {bounded['mask_value']:g} (tf_keras adds -1e9, "
                       "which int8 calibration cannot hold)")
        if v.get("stripped_bytes") is not None:
            out.append(f"`{v['name']}`: {v['stripped_bytes']:,} bytes of names, signature defs "
                       "and empty quantization tables stripped (export.strip); inputs and "
                       "outputs are addressed by index"
                       + (f"; structure claims not checked: {v['claims_unchecked']}"
                          if v.get("claims_unchecked") else ""))
        if sparse_note(v):
            out.append(sparse_note(v))
        for problem in v.get("violations", []):
            out.append(f"**`{v['name']}` fails its structure check**: {problem}")
        for runtime, result in v.get("runtimes", {}).items():
            if result["loads"] is None:
                out.append(f"`{v['name']}` on {runtime}: {result['reason']}")
            elif not result["loads"]:
                out.append(f"**`{v['name']}` does not load on {runtime}**: {result['reason']} "
                           f"(operators: {result['ops']})")
            elif result.get("agrees") is False:
                out.append(f"**`{v['name']}` runs on {runtime} but is wrong**: "
                           f"{result['reason'].removeprefix('loads but wrong: ')}")
    from pipeline import stages
    for s in report["stages"]:
        if s.get("reused"):
            out.append(f"stage `{s['name']}` was reused from the earlier run (--resume: its "
                       "settings and inputs are unchanged); its time and energy are that run's")
        if s["metrics"].get("resumed_at_epoch"):
            out.append(f"stage `{s['name']}` resumed an interrupted run at epoch "
                       f"{s['metrics']['resumed_at_epoch']} (the epochs before it were "
                       "restored from its checkpoint)")
        out += stages.get(s["type"]).notes(s["name"], s["metrics"])
        copy = s.get("keras3")
        if copy and copy.get("path"):
            out.append(f"stage `{s['name']}`: its model for Keras 3 is `{copy['path']}` "
                       f"(loads in Keras 3 and computes the same outputs, at most "
                       f"{copy['difference']:.2g} of their range apart)")
        elif copy:
            out.append(f"stage `{s['name']}`: no Keras 3 copy: {copy['skipped']}")
    for v in report["variants"]:
        if v.get("flex_ops"):
            out.append(f"`{v['name']}` holds TensorFlow select ops ({', '.join(v['flex_ops'])}): "
                       "it runs only with the Flex delegate (Android: "
                       "org.tensorflow:tensorflow-lite-select-tf-ops), not on tflite-micro or "
                       "tflite-runtime, and no interpreter here links it")
    return out


def to_markdown(report):
    """The report as a Markdown page (pareto.png beside it)."""
    base = report["baseline"]
    lines = [
        f"# greenlite report: {report['recipe']['name']}", "",
        f"**Ship {_answer(report)}**", "",
        f"Data: {report['data']['description']} ({report['data']['train']} train / "
        f"{report['data']['val']} val / {report['data']['test']} test). "
        f"Run time: {report['seconds']:.1f} s.", "",
        f"Baseline (Keras float model of stage `{base['stage']}`): "
        f"{keras_split(base)} accuracy "
        f"{base['keras_accuracy']:.4f}, {base['params']:,} parameters.",
    ]
    for note in (report.get("model") or {}).get("notes", []):
        lines += ["", f"Model: {note}."]
    if report["data"].get("preprocessing"):
        lines += ["", f"Inputs: {report['data']['preprocessing']}."]
        lines += [f"- `{v['name']}` takes {_input_text(v['input'])}"
                  for v in report["variants"] if "input" in v]
    headers, rows = compact(report)
    lines += ["", "## At a glance", "", "| " + " | ".join(headers) + " |",
              "|" + "---|" * len(headers)] + ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Accuracy against size and latency", "", "![pareto](pareto.png)"]
    for title, text, headers, rows in tables(report):
        lines += ["", f"## {title}", "", text, "", "| " + " | ".join(headers) + " |",
                  "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    extra = notes(report)
    if extra:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"


def to_html(report, png):
    """The report as one self-contained HTML page (the plot inlined), viewable offline."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>greenlite report: {esc(report['recipe']['name'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}td:first-child,th{text-align:left}"
        ".wide{overflow-x:auto;max-width:100%}.answer{font-size:17px}"
        "summary h2{display:inline}summary{cursor:pointer;margin:1em 0}"
        "img{max-width:100%;width:900px}</style></head><body>",
        f"<h1>greenlite report: {esc(report['recipe']['name'])}</h1>",
        f"<p class='answer'><strong>Ship {inline_html(_answer(report))}</strong></p>",
        f"<p>{esc(report['data']['description'])}; baseline Keras accuracy "
        f"{report['baseline']['keras_accuracy']:.4f}; run time {report['seconds']:.1f} s.</p>",
    ]
    for note in (report.get("model") or {}).get("notes", []):
        parts.append(f"<p>Model: {inline_html(note)}.</p>")
    def table(headers, rows, css):
        out = [f"<div class='{css}'><table><tr>"] + [f"<th>{esc(h)}</th>" for h in headers]
        out.append("</tr>")
        for row in rows:
            out += ["<tr>"] + [f"<td>{inline_html(c)}</td>" for c in row] + ["</tr>"]
        return out + ["</table></div>"]

    parts += ["<h2>At a glance</h2>"] + table(*compact(report), "glance")
    parts += ["<h2>Accuracy against size and latency</h2>",
              f"<img alt='pareto' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"]
    # The full tables are wide (up to 20 columns): each scrolls in its own box, so
    # the page itself never overflows a laptop's width.
    for title, text, headers, rows in tables(report):
        parts += [f"<details{' open' if title == 'TFLite variants' else ''}>"
                  f"<summary><h2>{esc(title)}</h2></summary>", f"<p>{inline_html(text)}</p>"]
        parts += table(headers, rows, "wide") + ["</details>"]
    extra = notes(report)
    if extra:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{inline_html(n)}</li>" for n in extra] + ["</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _answer(report):
    """The recommendation line (pipeline/recommend.py); reports written before it
    existed get one made now."""
    line = (report.get("recommendation") or recommend(report))["text"]
    return line if line.startswith("`") else f"nothing: {line}"


def inline_html(text):
    """The report's inline Markdown (`code`, **strong**, *emphasis*) as escaped HTML:
    report.md and report.html show the same words, each in its own markup."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<em>\1</em>", out)


def _input_text(detail):
    text = f"{detail['dtype']} {detail['shape']}"
    if detail["dtype"] in ("int8", "uint8"):
        text += (f", quantized as round(x / {detail['scale']:.6g}) + {detail['zero_point']}"
                 f" (clipped to the {detail['dtype']} range)")
    return text + "."


def _num(value, spec):
    return "" if value is None else format(value, spec)


def _unique(v):
    if not v.get("max_unique_per_channel"):
        return ""
    bits = v.get("entropy_bits_per_weight")
    return f"{v['max_unique_per_channel']}" + (f" ({bits:.2f} b)" if bits is not None else "")


def _runtime(result):
    if result is None or result["loads"] is None:
        return "not checked"
    if result["loads"] and result.get("agrees") is False:
        return "runs, WRONG (see notes)"
    if result["loads"]:
        agrees = (f", agrees: max output diff {result['max_abs_diff']:.3g}"
                  if result.get("agrees") else "")
        return f"yes ({result['median_ms']:.4f} ms, {result['delegated']} XNNPACK{agrees})"
    return "NO (see notes)"


def _payback(v):
    if "payback_inferences" not in v:
        return "baseline" if "joules_per_inference" in v else ""
    if not v.get("extra_emissions_kg"):
        return "—"  # no compression stage: nothing to pay back
    n = v["payback_inferences"]
    return "never (no saving)" if n is None else f"{n:,.0f}"
