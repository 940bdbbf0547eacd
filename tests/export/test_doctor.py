"""The quantization doctor on a run whose int8 language model was exported with tf_keras' -1e9 mask.

The run has the doctor on, as recipes have by default: it examines the int8
variant, finds it outside the perplexity budget, and fixes it.
"""
import json
import os

import pytest

from export import doctor, formats
from export.budget import Budget
from pipeline import doctor as run_doctor
from tests.conftest import run_pipeline

EXAMINED = formats.names(doctor_examines=True)  # read from the table: a new format joins


@pytest.fixture(scope="module")
def broken_lm_run(tmp_path_factory):
    """A tiny causal LM with tf_keras' own attention, exported to int8 without the
    bounded-mask rewrite: the int8 file's perplexity is far above float."""
    workdir = str(tmp_path_factory.mktemp("runs") / "lm")
    result = run_pipeline(
        "text_lm", workdir,
        "model.options={width: 32, heads: 2, layers: 1, mlp_width: 64, mask_value: null}",
        "data.max_bytes=60000", "data.sequence_length=32", "data.representative_samples=64",
        # The recipe's train stage alone, exported to int8 alone.
        "stages={train: {epochs: 6, batch_size: 64, learning_rate: 0.003}}",
        "export.formats_by_stage=null", "export.strip=[]", "export.formats=[int8]",
        "export.bound_attention=false", "export.doctor=true", "export.max_rise_percent=5",
        "benchmark.num_runs=2", "benchmark.warmup_runs=0")
    assert result.returncode == 0, result.stderr
    return workdir


def _report(workdir):
    with open(os.path.join(workdir, "report.json")) as f:
        return json.load(f)


def test_the_doctor_names_the_mask_and_fixes_it(broken_lm_run):
    before = {v["name"]: v for v in _report(broken_lm_run)["variants"]}["train_int8"]
    record = before["doctor"]
    # The mask-add is the range outlier, attributed to the attention layer.
    assert record["outliers"] and all(o["layer"] == "block1_attention"
                                      for o in record["outliers"])
    assert max(abs(v) for o in record["outliers"] for v in o["range"]) >= 1e8
    assert record["before"]["rise_percent"] > 5
    fix = record["fix"]
    assert fix["changes"] == ["attention mask bounded to -100 in block1_attention"]
    assert fix["within_budget"] and fix["after"]["rise_percent"] <= 5
    report = _report(broken_lm_run)
    variants = {v["name"]: v for v in report["variants"]}
    mixed = variants["train_int8_mixed"]
    assert mixed["format"] == "int8_mixed" and mixed["perplexity"] < before["perplexity"]
    assert os.path.isfile(os.path.join(broken_lm_run, mixed["path"]))
    assert variants["train_int8"]["doctor"]["fix"]["variant"] == "train_int8_mixed"
    markdown = open(os.path.join(broken_lm_run, "report.md")).read()
    assert "## Quantization doctor" in markdown and "block1_attention" in markdown


def test_the_doctor_command_rewrites_the_report(broken_lm_run):
    record = run_doctor.treat(broken_lm_run, "train_int8", Budget("max_rise_percent", 5),
                              log=lambda line: None)
    assert record["fix"]["within_budget"]
    names = [v["name"] for v in _report(broken_lm_run)["variants"]]
    assert names == ["train_int8", "train_int8_mixed"]  # replaced, not added


@pytest.fixture
def finished_run(tmp_path):
    """A run directory as the doctor reads it (report.json only: bad input stops before more)."""
    report = {"recipe": {}, "data": {"task": "classification"},
              "stages": [{"name": "train", "model_path": "01_train/model.h5",
                          "keras_accuracy": 0.9, "keras_perplexity": 1.5}],
              "variants": [{"name": "train_float32", "stage": "train", "format": "float32",
                            "path": "export/train_float32.tflite"},
                           {"name": "train_int8", "stage": "train", "format": "int8",
                            "path": "export/train_int8.tflite"},
                           {"name": "train_int16x8", "stage": "train", "format": "int16x8",
                            "error": "the converter process crashed (SIGABRT)"}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--variant=train_float32"], "--variant: 'train_float32' is float32; the doctor examines "
                                  f"calibrated variants ({', '.join(EXAMINED)}): train_int8"),
    (["--variant=nope"], "--variant: no variant 'nope'; the run's variants: train_float32, "
                         "train_int8, train_int16x8"),
    (["--variant=train_int16x8"], "--variant: 'train_int16x8' was not exported: the converter "
                                  "process crashed (SIGABRT)"),
    (["--max_drop_points=1", "--max_rise_percent=5"], "give one budget"),
    (["--max_rise_percent=-1"], "--max_rise_percent: got -1.0; allowed: a number >= 0"),
])
def test_bad_input_is_one_line_and_the_run_is_untouched(finished_run, capsys, args, message):
    before = sorted(os.listdir(finished_run)), (finished_run / "report.json").read_bytes()
    assert run_doctor.main([f"--workdir={finished_run}"] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("doctor: error: ") and message in err and err.count("\n") == 1
    assert (sorted(os.listdir(finished_run)), (finished_run / "report.json").read_bytes()) == before


def test_a_directory_without_a_run(tmp_path, capsys):
    assert run_doctor.main([f"--workdir={tmp_path}"]) == 2
    assert "holds no report.json; run the pipeline first" in capsys.readouterr().err


def test_a_diagnosis_that_fails_does_not_fail_the_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the debugger met a model it cannot handle\nmore lines")
    monkeypatch.setattr(doctor, "examine", broken)
    workdir = tmp_path / "run"
    result = run_pipeline("default", workdir, "train.epochs=1", "train.allow_chance=true",
                          "export.formats=[int8]", "benchmark.num_runs=1",
                          "benchmark.warmup_runs=0", "export.doctor=true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "doctor: train_int8: could not examine it: the debugger met a model" in result.stdout
    report = _report(workdir)
    assert report["variants"][0]["doctor_error"] == "the debugger met a model it cannot handle"
    assert ("`train_int8`: the quantization doctor could not examine it: the debugger met a "
            "model it cannot handle") in (workdir / "report.md").read_text()


def test_the_int16_step_widens_only_the_ops_it_names(tmp_path):
    """ai-edge-quantizer's static int8 with one op's activations int16: the
    named op's tensors become int16, the rest stay int8, and the file runs."""
    import numpy as np

    import models
    from export.convert import convert
    from export.tflite_file import operators, read_model
    model = models.build("tiny_transformer", (16,), 32,
                         {"width": 16, "heads": 2, "layers": 1, "mlp_width": 32})
    tokens = np.random.default_rng(0).integers(0, 32, (30, 16)).astype(np.int32)
    float32 = convert(model, "float32")
    (tmp_path / "float32.tflite").write_bytes(float32)
    graph = read_model(str(tmp_path / "float32.tflite")).subgraphs[0]
    matmul = next(op for op, (name, _) in zip(graph.operators,
                                              operators(str(tmp_path / "float32.tflite")))
                  if name == "BATCH_MATMUL")
    target = graph.tensors[matmul.outputs[0]].name
    target = target.decode() if isinstance(target, bytes) else target
    data = tmp_path / "data.npz"
    np.savez(data, x=tokens, y=tokens)
    int16_tensors = {}
    for wide in ([], [target]):
        path = tmp_path / f"int16_{len(wide)}.tflite"
        path.write_bytes(doctor.int16_model(float32, tokens, wide))
        graph = read_model(str(path)).subgraphs[0]
        int16_tensors[len(wide)] = {(t.name.decode() if isinstance(t.name, bytes) else t.name)
                                    for t in graph.tensors if t.type == 7}  # INT16
        scored, error = doctor._score_in_child(str(path), str(data), {"num_runs": 1})
        assert error is None and scored["num_examples"] == 30
    assert int16_tensors[0] == set()
    assert target in int16_tensors[1] and len(int16_tensors[1]) <= 4  # the op's input and output
