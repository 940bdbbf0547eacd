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


def _report():
    latency = {"p50": 2.0, "p90": 3.0, "p99": 4.0, "mean": 2.5}
    return {
        "recipe": {"name": "t"}, "seconds": 1.0,
        "data": {"description": "d", "train": 1, "val": 1, "test": 1, "task": "classification",
                 "input_shape": [8, 8, 1]},
        "baseline": {"stage": "train", "keras_accuracy": 0.95, "params": 10},
        "stages": [
            {"name": "train", "type": "train", "seconds": 1.0, "params": 10,
             "keras_accuracy": 0.95, "metrics": {}, "energy": {}},
            {"name": "quantize", "type": "quantize", "seconds": 1.0, "params": 10,
             "keras_accuracy": 0.94, "energy": {},
             "metrics": {"masks_reapplied": ["conv"], "skipped_layers": {"pool": "has no weights"}}},
        ],
        "variants": [
            {"name": "train_float32", "stage": "train", "format": "float32", "size_bytes": 400,
             "gzip_bytes": 360, "gzip_ratio_vs_baseline": 1.0, "accuracy": 0.95,
             "latency_ms": latency},
            {"name": "quantize_int8", "stage": "quantize", "format": "int8", "size_bytes": 100,
             "gzip_bytes": 40, "gzip_ratio_vs_baseline": 9.0, "accuracy": 0.9312,
             "sparsity": 0.75, "latency_ms": latency,
             "violations": ["conv: sparsity 0.5000 is more than 1 point below the target 0.75"]},
            {"name": "quantize_int16x8", "stage": "quantize", "format": "int16x8",
             "error": "the converter process crashed (SIGABRT)"},
        ],
        "energy": {"tracked": False, "reason": "energy.track is false in the recipe"},
    }


def test_every_row_has_a_cell_under_each_header():
    for title, _, headers, rows in report.tables(_report()):
        assert rows and all(len(row) == len(headers) for row in rows), title


def test_variant_cells():
    (_, _, _, _), (_, _, headers, rows) = report.tables(_report())
    int8 = dict(zip(headers, rows[1]))
    assert int8["file bytes (device)"] == "100" and int8["gzip bytes (download)"] == "40"
    # No float32 file of its own stage: no size ratio; the gzip ratio is against the baseline's.
    assert int8["file vs stage float32 (device)"] == ""
    assert int8["file vs baseline float32 (device)"] == "0.250x"
    assert int8["gzip smaller than baseline float32 (download)"] == "9.0x"
    assert int8["vs baseline (points)"] == "-1.88" and int8["sparsity"] == "0.7500"
    failed = dict(zip(headers, rows[2]))
    assert failed["file bytes (device)"] == "failed: the converter process crashed (SIGABRT)"


def test_notes_come_from_the_variants_and_from_each_stage_type():
    lines = report.notes(_report())
    assert lines == [
        "**`quantize_int8` fails its structure check**: conv: sparsity 0.5000 is more than "
        "1 point below the target 0.75",
        "stage `quantize` skipped: 1 layer, has no weights (pool)",
        "stage `quantize`: tfmot's sparsity-preserving QAT lost the zeros of `conv`; their "
        "pruning masks were re-applied after training",
    ]
    md = report.to_markdown(_report())
    assert "| quantize_int8 | int8 | 100 |  | 0.250x |  | 40 | 9.0x |" in md
    assert "- **`quantize_int8` fails its structure check**" in md
    page = report.to_html(_report(), b"")
    assert "<strong><code>quantize_int8</code> fails its structure check</strong>" in page


def test_bounded_attention_and_a_wrong_runtime_are_noted():
    r = _report()
    int8 = r["variants"][1]
    int8["attention_mask_bounded"] = {"layers": ["block1_attention"], "mask_value": -100.0}
    int8["runtimes"] = {"tflite-runtime 2.14.0": {
        "loads": True, "agrees": False, "median_ms": 1.0, "delegated": "all", "ops": "",
        "reason": "loads but wrong: perplexity 214.9 against LiteRT's 5.34 (max output "
                  "difference 3)"}}
    lines = report.notes(r)
    assert ("`quantize_int8`: before conversion, the attention mask of `block1_attention` was "
            "bounded to -100 (tf_keras adds -1e9, which int8 calibration cannot hold)") in lines
    assert ("**`quantize_int8` runs on tflite-runtime 2.14.0 but is wrong**: perplexity 214.9 "
            "against LiteRT's 5.34 (max output difference 3)") in lines
    headers, rows = report.tables(r)[1][2:]
    assert dict(zip(headers, rows[1]))["loads on tflite-runtime 2.14.0"] == "runs, WRONG (see notes)"


def _energy(kwh, kg):
    return {"energy_kwh": kwh, "emissions_kg": kg, "grid_intensity_g_per_kwh": 400.0,
            "cpu_tdp_w": 10.0, "cpu_count": 2, "mode": "estimated", "method": "test",
            "cpu_tdp_source": "test"}


def _variant(stage, fmt, gzip, p50):
    return {"name": f"{stage}_{fmt}", "stage": stage, "format": fmt, "size_bytes": gzip * 2,
            "gzip_bytes": gzip, "accuracy": 0.9, "latency_ms": {"p50": p50}}


def test_the_baseline_is_the_first_stages_float32_file_or_none():
    """The gzip ratio and the carbon payback compare against the *first* stage's
    float32 file; a run whose first stage exports no float32 has no baseline file,
    and a later stage's float32 (already compressed) must not stand in for it."""
    import types

    from pipeline import recipe as recipe_lib
    from tests.conftest import ROOT
    recipe = recipe_lib.load(f"{ROOT}/recipes/prune_qat.yaml", [])
    data = types.SimpleNamespace(description="d", task="classification", preprocessing="p",
                                 input_shape=(8, 8, 1), num_classes=10, train=[0] * 3,
                                 val=[0], test=[0], streamed=False)
    stages = [{"name": "train", "keras_accuracy": 0.95, "params": 10, "energy": _energy(1e-4, 4e-5)},
              {"name": "prune", "keras_accuracy": 0.95, "params": 10, "energy": _energy(2e-4, 8e-5)}]
    # The first stage exports no float32; the second's float32 is 4x smaller in gzip.
    variants = [_variant("prune", "float32", 250, 1.0), _variant("prune", "int8", 100, 0.5)]
    built = report.build(recipe, data, stages, variants, seconds=1.0)
    assert built["baseline"]["float32_variant"] is None
    assert all("gzip_ratio_vs_baseline" not in v for v in built["variants"])
    assert built["energy"]["payback_baseline"] is None
    assert all(v.get("payback_inferences") is None for v in built["variants"])
    # With the first stage's float32 file present, it is the baseline.
    variants = [_variant("train", "float32", 1000, 2.0)] + [
        _variant("prune", "float32", 250, 1.0), _variant("prune", "int8", 100, 0.5)]
    built = report.build(recipe, data, stages, variants, seconds=1.0)
    assert built["baseline"]["float32_variant"] == "train_float32"
    ratios = {v["name"]: v["gzip_ratio_vs_baseline"] for v in built["variants"]}
    assert ratios == {"train_float32": 1.0, "prune_float32": 4.0, "prune_int8": 10.0}
    assert built["energy"]["payback_baseline"] == "train_float32"


def test_the_coverage_table_flags_where_a_file_cannot_run():
    """A file tflite-micro lacks two ops for, with one op left on an NPU's CPU and
    one to XNNPACK's builtin kernels: each runtime's cell names them, and the last
    column names the recipe's ship targets where it fails; a file that runs
    everywhere says so."""
    from pipeline.coverage import coverage_table
    good = {"name": "a_int8", "stage": "a", "format": "int8", "xnnpack": "all",
            "runtimes": {"tflite-runtime 2.14.0": {"loads": True, "agrees": True}},
            "micro": {"checked": True, "runs": True},
            "npu": {"ethos-u55-128": {"compiled": True, "cpu_ops": {}}}}
    bad = {"name": "b_int8", "stage": "b", "format": "int8", "xnnpack": "partial",
           "not_delegated": {"GELU": 2},
           "runtimes": {"tflite-runtime 2.14.0": {"loads": False, "reason": "no GELU"}},
           "micro": {"checked": True, "runs": False, "missing_ops": ["GELU", "REDUCE_PROD"]},
           "npu": {"ethos-u55-128": {"compiled": True, "cpu_ops": {"GELU": 2}}}}
    onnx = {"name": "b_onnx_int8", "stage": "b", "format": "onnx_int8"}
    r = {"recipe": {"deploy": {"targets": ["sparkfun-edge"], "npu": ["ethos-u55-128"]}},
         "variants": [good, bad, onnx]}
    headers, rows = coverage_table(r)
    assert headers == ["variant", "LiteRT (this CPU)", "tflite-runtime 2.14.0", "tflite-micro",
                       "ethos-u55-128 (Vela)", "cannot run where it ships"]
    assert [row[0] for row in rows] == ["a_int8", "b_int8"]  # the server's file is not here
    assert rows[0][1:] == ["XNNPACK: every op", "loads", "every op", "every op on the NPU",
                           "runs where it ships"]
    assert rows[1][1:] == ["builtin kernels: GELU x2", "does NOT load: no GELU",
                           "missing: GELU, REDUCE_PROD", "CPU: GELU x2",
                           "tflite-micro (sparkfun-edge): GELU, REDUCE_PROD; "
                           "ethos-u55-128: GELU x2 on the CPU"]
    # Shipped nowhere but LiteRT: nothing to flag.
    r["recipe"]["deploy"] = {"targets": [], "npu": []}
    assert coverage_table(r)[1][1][-1] == "runs where it ships"
    # Nothing checked beyond LiteRT: no table.
    assert coverage_table({"recipe": {}, "variants": [{"name": "x", "format": "float32",
                                                       "xnnpack": "all"}]}) is None


def test_each_coverage_cell_says_exactly_what_was_found():
    """Every branch of each runtime's cell, word for word (a flipped condition or a
    dropped default changes the text)."""
    from pipeline import coverage
    litert = coverage.litert_cell
    assert litert({"xnnpack": "all", "not_delegated": {"X": 1}}) == "XNNPACK: every op"
    assert litert({"xnnpack": "none"}) == "builtin kernels: every op"
    assert litert({"xnnpack": "partial", "not_delegated": {"B": 1, "A": 3}}) == \
        "builtin kernels: A x3, B x1"
    assert litert({"xnnpack": "unknown"}) == litert({}) == "runs (delegation unknown)"
    runtime = coverage.runtime_cell
    assert runtime(None) == runtime({"loads": None}) == "not checked"
    assert runtime({"loads": False, "reason": "no op"}) == "does NOT load: no op"
    assert runtime({"loads": True, "agrees": False}) == "loads, WRONG outputs"
    assert runtime({"loads": True}) == runtime({"loads": True, "agrees": True}) == "loads"
    micro = coverage.micro_cell
    assert micro(None) == micro({"checked": False}) == "not checked"
    assert micro({"checked": True, "runs": True}) == "every op"
    assert micro({"checked": True, "runs": False, "missing_ops": [], "reason": "arena"}) == \
        "missing: arena"
    assert micro({"checked": True, "runs": False}) == "missing: ?"
    npu = coverage.npu_cell
    assert npu(None) == npu({}) == "not compiled"
    assert npu({"compiled": False, "reason": "Vela failed: x"}) == "not compiled: Vela failed: x"
    assert npu({"compiled": True, "cpu_ops": {"GELU": 2, "ADD": 1}}) == "CPU: ADD x1, GELU x2"
    assert npu({"compiled": True}) == "every op on the NPU"
    ships = coverage.ships_cell
    failed = {"format": "int8", "micro": {"checked": True, "runs": False, "missing_ops": []},
              "npu": {"u55": {"compiled": False, "reason": "x"}}}
    assert ships(failed, ["board"], ["u55"]) == ("tflite-micro (board): does not run; "
                                                 "u55: Vela failed")
    assert ships(failed, [], []) == "runs where it ships"
    unchecked = {"format": "int8", "micro": {"checked": False}, "npu": {}}
    assert ships(unchecked, ["board"], ["u55"]) == "runs where it ships"


def test_the_coverage_table_skips_failed_files_and_names_a_users_board():
    """A failed file has no row; a float file's integer-only runtimes read n/a; a
    board given as {name, ram_kb, flash_kb} is named where the file cannot run; a
    run that checked only tflite-micro still gets its table."""
    from pipeline.coverage import NOT_INTEGER, coverage_table
    missing = {"checked": True, "runs": False, "missing_ops": ["GELU"]}
    r = {"recipe": {"deploy": {"targets": [{"name": "my-board", "ram_kb": 64,
                                            "flash_kb": 256}]}},
         "variants": [{"name": "a_float32", "format": "float32", "xnnpack": "all"},
                      {"name": "a_int8", "format": "int8", "xnnpack": "all", "micro": missing},
                      {"name": "a_int16x8", "format": "int16x8", "error": "crashed",
                       "micro": missing}]}
    headers, rows = coverage_table(r)
    assert headers == ["variant", "LiteRT (this CPU)", "tflite-micro",
                       "cannot run where it ships"]
    assert rows == [["a_float32", "XNNPACK: every op", NOT_INTEGER, "runs where it ships"],
                    ["a_int8", "XNNPACK: every op", "missing: GELU",
                     "tflite-micro (my-board): GELU"]]
