"""The benchmark scripts' arithmetic on known inputs (their figures are printed by runs,
not asserted; what they compute from them is)."""
import pytest

from benchmarks import default_vs_script, onnx_vs_tflite

LOG = """greenlite: recipe recipes/default.yaml (1 stage(s)) -> /tmp/x
[    7.6s] data: scikit-learn digits (8x8): 1167 train
[    7.9s] model: digits_cnn, 151,306 parameters
[   13.2s] [stage 1/1] train done in 5.1s: Keras test accuracy 0.9556
[   24.5s] [convert 1/2] train_float32: done
[   24.6s] [convert 2/2] train_int8: done
[   25.0s] [export 1/2] train_float32: 608,332 bytes, accuracy 0.9556
[   25.4s] [export 2/2] train_int8: 161,160 bytes, accuracy 0.9556
[   29.6s]   train_int8: accuracy 0.9556, perplexity 1.219 against Keras: within the budget
[   45.0s]   train_int8 on tflite-micro: runs
[   45.9s]   train_int8 on stm32u385: 116.9 uJ per inference, battery 1,017 days
[   53.6s]   train_int8 on tflite-runtime 2.14.0: loads
[   53.9s] report: /tmp/x/report.md
"""


def test_phases_end_at_their_last_line_and_start_where_the_previous_ended():
    got = dict(default_vs_script.phases(LOG))
    expected = {"start-up, data, model": 7.9, "train": 5.3, "convert": 11.4, "benchmark": 0.8,
                "doctor": 4.2, "deploy (micro, metadata)": 15.4, "npu (Vela) and boards": 0.9,
                "runtime gate": 7.7, "report": 0.3}
    assert got == pytest.approx(expected)
    assert abs(sum(got.values()) - 53.9) < 1e-9


def test_the_side_by_side_table_compares_each_file_with_its_stages_float32():
    def v(fmt, size, p50, path_suffix=".tflite", stage="train"):
        return {"name": f"{stage}_{fmt}", "stage": stage, "format": fmt, "size_bytes": size,
                "accuracy": 0.95, "latency_ms": {"p50": p50}, "interpreter": "x",
                "path": f"export/{stage}_{fmt}{path_suffix}"}
    report = {"data": {"task": "classification"}, "recipe": {},
              "variants": [v("onnx_int8", 250, 0.5, ".onnx"), v("float32", 1000, 2.0),
                           v("int8", 250, 1.0), {"name": "x", "stage": "train", "error": "e"}]}
    (stage, table), = onnx_vs_tflite.rows(report)
    assert stage == "train" and [row[0] for row in table] == ["float32", "int8", "onnx_int8"]
    assert table[1][3] == "0.250x" and table[1][6] == "2.00x"   # bytes and speed vs float32
    assert table[2][6] == "4.00x"
