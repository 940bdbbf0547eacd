"""Does a test fail when a promise is broken? Each change below, made in a scratch copy.

    python benchmarks/mutation_check.py [--only=name,...] [--scratch=/tmp/greenlite-mutations]

For each named change to the product code it copies the working tree, makes
the change (an exact text replacement, so a stale entry fails loudly instead of
testing nothing), runs the tests that should catch it, and prints one row:
the change, and the tests that failed (none: the promise is unguarded).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (file, text, replacement, tests that should fail)
MUTATIONS = {
    "the coverage table does not flag NPU ops left on the CPU": (
        "pipeline/coverage.py", '        if n.get("compiled") and n.get("cpu_ops"):',
        "        if False:",
        ["tests/pipeline/test_report.py::test_the_coverage_table_flags_where_a_file_cannot_run"]),
    "the coverage table flags a microcontroller the recipe does not ship to": (
        "pipeline/coverage.py", "    if micro_targets and m.get(\"checked\")",
        "    if m.get(\"checked\")",
        ["tests/pipeline/test_report.py::test_the_coverage_table_flags_where_a_file_cannot_run"]),
    "a search trial without the shipped file's metadata under a size limit": (
        "pipeline/search.py", '"metadata": sized and self.recipe.deploy.metadata}',
        '"metadata": False}',
        ["tests/pipeline/test_search.py::test_a_trials_file_carries_the_metadata_the_shipped_file_will"]),
    "TensorRT's QDQ file gets zero points (TensorRT refuses them)": (
        "export/onnx_convert.py", '"ActivationSymmetric": symmetric_activations,',
        '"ActivationSymmetric": False,',
        ["tests/export/test_onnx.py::test_the_tensorrt_int8_file_is_symmetric"]),
    "ONNX int8 activations always int8 (S8S8: 3x slower on x86 here)": (
        "export/onnx_convert.py", 'activation_type={"uint8": QuantType.QUInt8,',
        'activation_type={"uint8": QuantType.QInt8,',
        ["tests/export/test_onnx.py::test_onnx_int8_is_u8s8_with_int8_weights_per_channel"]),
    "ONNX int8 weights quantized per tensor": (
        "export/onnx_convert.py", "per_channel=True,", "per_channel=False,",
        ["tests/export/test_onnx.py::test_onnx_int8_is_u8s8_with_int8_weights_per_channel"]),
    "TensorFlow's Erfc written as Erf - 1": (
        "export/onnx_convert.py", "[one.output[0], erf.output[0]]",
        "[erf.output[0], one.output[0]]",
        ["tests/export/test_onnx.py::test_users_models_convert_and_agree"]),
    "an ONNX softmax output read as logits": (
        "export/benchmark_onnx.py", 'return node is not None and node.op_type == "Softmax"',
        "return False",
        ["tests/export/test_onnx.py::test_a_softmax_model_is_scored_on_its_probabilities"]),
    "an ONNX softmax seen only without Q/DQ after it": (
        "export/benchmark_onnx.py", "while node is not None and node.op_type in PASS_THROUGH:",
        "while False:",
        ["tests/export/test_onnx.py::test_a_softmax_model_is_scored_on_its_probabilities"]),
    "ONNX convolution MACs count every output channel per output": (
        "export/benchmark_onnx.py", "return out_elements * int(np.prod(weights[1:])) if weights",
        "return out_elements * int(np.prod(weights)) if weights",
        ["tests/export/test_onnx.py::test_macs_count_depthwise_dense_and_einsum_as_the_tflite_graph_does"]),
    "ONNX MACs from static shape inference": (
        "export/benchmark_onnx.py", "        shapes.update(_run_shapes(model, feed))",
        "        shapes.update({})",
        ["tests/export/test_onnx.py::test_macs_count_depthwise_dense_and_einsum_as_the_tflite_graph_does",
         "tests/export/test_onnx.py::test_the_benchmark_measures_an_onnx_file_as_it_measures_a_tflite_file"]),
    "an ONNX file with ops no runtime has is kept": (
        "export/onnx_convert.py", "    if unsupported:\n", "    if False:\n",
        ["tests/export/test_onnx.py::test_a_model_onnx_cannot_express_is_one_line_naming_the_op"]),
    "an ONNX file can be the recommended file": (
        "pipeline/recommend.py", "            and formats.on_device(v[\"format\"]))", ")",
        ["tests/pipeline/test_recommend.py::test_a_servers_file_is_never_the_answer"]),
    "a cached query sees only earlier tokens and not itself": (
        "export/generative.py", "[tf.newaxis, :] <= input_pos", "[tf.newaxis, :] < input_pos",
        ["tests/export/test_generative.py::test_the_converted_file_decodes_what_keras_computes"]),
    "the cache is written at the last position of a chunk": (
        "export/generative.py", "start = [0, 0, input_pos[0], 0]",
        "start = [0, 0, input_pos[-1], 0]",
        ["tests/export/test_generative.py::test_the_converted_file_decodes_what_keras_computes"]),
    "cached attention forgets its 1/sqrt(head_dim)": (
        "export/generative.py", "q = project(x, q_w) * scale", "q = project(x, q_w)",
        ["tests/export/test_generative.py::test_the_cached_forward_computes_the_window_model"]),
    "a prompt of whole prefill chunks skips decode": (
        "export/generative.py", "if t <= len(tokens) - 1]", "if t <= len(tokens)]",
        ["tests/export/test_generative.py::test_the_converted_file_decodes_what_keras_computes"]),
    "KL is taken quantized-to-float": (
        "export/lm_quality.py", "log_p, log_q = log_softmax(reference_logits), log_softmax(logits)",
        "log_q, log_p = log_softmax(reference_logits), log_softmax(logits)",
        ["tests/export/test_lm_quality.py::test_kl_is_float_to_quantized_in_nats"]),
    "the generation benchmark reports the parent's peak memory": (
        "export/generate.py", '"peak_rss_mb": peak_rss_mb(),',
        '"peak_rss_mb": __import__("resource").getrusage(0).ru_maxrss / 1024,',
        ["tests/export/test_litertlm.py::test_generate_benchmark_reports_the_runtimes_own_figures"]),
    "generate accepts max_tokens past the context": (
        "export/generate.py", "if max_tokens < 1 or tokens + max_tokens > context:",
        "if max_tokens < 1:",
        ["tests/export/test_litertlm.py::test_bad_requests_are_one_line"]),
    "a bundle's tokenizer size is not checked": (
        "export/litertlm.py", "if size is not None and size != vocabulary:", "if False:",
        ["tests/export/test_litertlm.py::test_a_tokenizer_of_another_size_is_refused"]),
    "an ensemble of teachers is its first teacher": (
        "pipeline/training.py", "    if len(models) == 1:\n        return models[0]",
        "    if True:\n        return models[0]",
        ["tests/pipeline/test_distillation.py::"
         "test_an_ensemble_teaches_the_mean_of_its_teachers_logits",
         "tests/pipeline/test_distillation.py::test_a_stage_learns_from_an_ensemble"]),
    "an ensemble averages a softmax teacher's probabilities as logits": (
        "pipeline/distillation.py", "        if outputs_probabilities(teacher):",
        "        if False:",
        ["tests/pipeline/test_distillation.py::"
         "test_an_ensemble_teaches_the_mean_of_its_teachers_logits"]),
    "an empty list of teachers loads": (
        "pipeline/recipe.py", "        if teacher == []:", "        if False:",
        ["tests/pipeline/test_distillation.py::test_bad_distillation_settings"]),
    "a search trial's ensemble keeps the first stage's name": (
        "pipeline/search.py",
        "[base_model if t == self.first else t for t in teacher]", "list(teacher)",
        ["tests/pipeline/test_search.py::test_a_trials_teachers_name_the_base_model"]),
    "a stage's batches come from the recipe's seed": (
        "pipeline/training.py", "ctx.seed if seed is None else seed", "ctx.seed",
        ["tests/pipeline/stages/test_train.py::"
         "test_the_batches_are_shuffled_and_shifted_from_the_stages_seed"]),
    "reinitialize keeps the model's weights": (
        "pipeline/stages/train.py", "        if cfg.reinitialize:", "        if False:",
        ["tests/pipeline/stages/test_train.py::"
         "test_reinitialize_draws_new_weights_from_the_stages_seed"]),
    "seed_offset is ignored": (
        "pipeline/stages/train.py", "        seed = ctx.seed + cfg.seed_offset",
        "        seed = ctx.seed",
        ["tests/pipeline/stages/test_train.py::"
         "test_reinitialize_draws_new_weights_from_the_stages_seed"]),
    "QAT starts from tfmot's own ranges": (
        "pipeline/stages/quantize.py", "        if x is None:\n            return {}",
        "        if True:\n            return {}",
        ["tests/pipeline/test_qat_ranges.py::test_the_quantize_stage_starts_qat_from_measured_ranges"]),
    "QAT's ranges refuse a layer another model also calls": (
        "pipeline/qat_ranges.py",
        "own = [i for i in nodes if keys is None or f\"{layer.name}_ib-{i}\" in keys]",
        "own = list(nodes)",
        ["tests/pipeline/test_qat_ranges.py::"
         "test_layers_the_model_shares_with_another_get_their_ranges"]),
    "QAT's ranges start from data only when asked": (
        "pipeline/stages/quantize.py", 'init_ranges: Literal["data", "tfmot"] = "data"',
        'init_ranges: Literal["data", "tfmot"] = "tfmot"',
        ["tests/pipeline/stages/test_quantize.py::test_qat_model_exports_to_int8_with_its_accuracy"]),
    "QAT's starting ranges are the widest batch's": (
        "pipeline/qat_ranges.py", "low, high = float(np.mean(low)), float(np.mean(high))",
        "low, high = float(np.min(low)), float(np.max(high))",
        ["tests/pipeline/test_qat_ranges.py::test_ranges_are_the_float_activations_batch_ranges"]),
    "a softmax's pre-activation range measured after the softmax": (
        "pipeline/qat_ranges.py", "value = pre_layers[target.layer](value, training=False)",
        "value = float_model.get_layer(target.layer)(value, training=False)",
        ["tests/pipeline/test_qat_ranges.py::test_a_softmax_output_gets_its_logits_range"]),
    "epochs: 0 leaves the weights' ranges at tfmot's start": (
        "pipeline/stages/quantize.py",
        "            qat_ranges.set_weight_ranges(qat, examples[:cfg.batch_size])",
        "            pass",
        ["tests/pipeline/test_qat_ranges.py::"
         "test_epochs_zero_quantizes_clustered_weights_on_the_whole_grid"]),
    "setting the weights' ranges keeps what the pass moved": (
        "pipeline/qat_ranges.py", "    for variable, value in kept:\n        variable.assign(value)",
        "    for variable, value in kept:\n        pass",
        ["tests/pipeline/test_qat_ranges.py::test_epochs_zero_is_post_training_quantization"]),
    "violations never reports a shortfall": (
        "pipeline/structure.py", "        return problems\n\n\n@dataclasses.dataclass",
        "        return []\n\n\n@dataclasses.dataclass", ["tests/pipeline/test_structure.py"]),
    "report shows the claimed sparsity, not the file's": (
        "pipeline/structure.py",
        "sparsity=overall_sparsity(stats, claims.sparsity) if claims.sparsity else None,",
        "sparsity=min(claims.sparsity.values()) if claims.sparsity else None,",
        ["tests/pipeline/test_structure.py", "tests/pipeline/test_run_compression.py"]),
    "int8 calibrated on a single example": (
        "pipeline/run.py", "data.representative(recipe.data.representative_samples, recipe.seed)",
        "data.representative(1, recipe.seed)",
        ["tests/pipeline/test_run.py::test_default_recipe_end_to_end"]),
    "converter calibrates on its first example": (
        "export/convert.py", "        for example in representative:",
        "        for example in representative[:1]:",
        ["tests/export/test_convert.py::test_int8_calibration_uses_every_representative_example"]),
    "atomic_write_bytes writes in place": (
        "pipeline/files.py",
        "    os.makedirs(directory, exist_ok=True)\n    fd, tmp",
        "    os.makedirs(directory, exist_ok=True)\n    with open(path, 'wb') as f:\n"
        "        f.write(data)\n    return\n    fd, tmp", ["tests/pipeline/test_files.py"]),
    "energy always labelled measured": (
        "pipeline/energy.py", "    measured = mode in MEASURED_MODES",
        "    measured = True", ["tests/pipeline/test_energy.py"]),
    "joules per inference labelled measured with RAPL": (
        "pipeline/energy.py", '        f"an estimate, not a measurement: median latency',
        '        f"{first[\'mode\']}: median latency', ["tests/pipeline/test_energy.py"]),
    "zero-point ignored": (
        "export/benchmark.py", "np.round(x / scale + zero_point)", "np.round(x / scale)",
        ["tests/export/test_benchmark.py"]),
    "schedule frequency doubled": (
        "pipeline/schedules.py", "    return Steps(begin, end, freq,",
        "    return Steps(begin, end, 2 * freq,",
        ["tests/pipeline/test_schedules.py"]),
    "Lambda refusal removed": (
        "models/user.py", "    if lambdas and not trust_model_code:", "    if False:",
        ["tests/models/test_user.py"]),
    "payback sign flipped": (
        "pipeline/energy.py", "saving_kg = (baseline_joules - variant_joules)",
        "saving_kg = (variant_joules - baseline_joules)", ["tests/pipeline/test_energy.py"]),
    "gzip size = raw size": (
        "export/benchmark.py", "    return len(gzip.compress(content, compresslevel=9))",
        "    return len(content)",
        ["tests/export/test_benchmark.py"]),
    "TensorFlow imported by the benchmark": (
        "export/benchmark.py", "\nimport numpy as np\n", "\nimport numpy as np\nimport tensorflow\n",
        ["tests/export/test_benchmark.py"]),
    "QAT ignores its teacher": (
        "pipeline/training.py", "    if teacher is None and cfg.teacher:", "    if False:",
        ["tests/pipeline/test_distillation.py::test_qat_learns_from_its_teacher"]),
    "pareto.png labels every point": (
        "pipeline/plots.py", "        for i in front:  #", "        for i in range(len(points)):  #",
        ["tests/pipeline/test_plots.py"]),
    "convert error names no file": (
        "export/convert.py", 'f"--model: cannot load {model_path!r}: {_first_line(e)}"',
        'f"{_first_line(e)}"', ["tests/export/test_convert.py::test_child_conversion_writes_the_file_or_reports_why"]),
    "prune keeps no zeros it claims (Keras)": (
        "pipeline/stages/prune.py", "        short = claims.violations(stats)", "        short = []",
        ["tests/pipeline/stages/test_prune.py::test_a_shortfall_in_keras_stops_the_stage"]),
    "runtime gate trusts any file that runs": (
        "export/compat.py", '"max_abs_diff": diff, "agrees": not problems,',
        '"max_abs_diff": diff, "agrees": True,',
        ["tests/export/test_compat.py::test_a_file_that_runs_but_disagrees_is_marked_wrong"]),
    "converter keeps tf_keras' -1e9 attention mask": (
        "export/convert.py", "        model, _ = bound_attention_masks(model)\n", "",
        ["tests/pipeline/test_attention.py::test_full_int8_of_a_users_language_model_holds"]),
    "average pool gets its own output scale in QAT": (
        "pipeline/stages/quantize.py",
        'SAME_SCALE_LAYERS = ("AveragePooling1D", "AveragePooling2D")', "SAME_SCALE_LAYERS = ()",
        ["tests/pipeline/stages/test_quantize.py::test_qat_of_a_dense_block_exports_to_int8"]),
    "micro arena: the first size that works (not the smallest)": (
        "export/micro.py", "        while high - low > ALIGNMENT:", "        while False:",
        ["tests/export/test_micro.py::test_the_measured_arena_is_the_smallest_that_runs"]),
    "micro runtime's missing ops never named": (
        "export/micro.py", "    have = registered_ops()\n", "    have = set()\n",
        ["tests/export/test_micro.py::test_the_zoo_transformer_has_a_microcontroller_build"]),
    "the doctor's int16 step widens nothing": (
        "export/doctor.py", "    for name in int16_tensors:", "    for name in []:",
        ["tests/export/test_doctor.py::test_the_int16_step_widens_only_the_ops_it_names"]),
    "a board fits whatever the arena": (
        "pipeline/deploy.py", '        if verdict["ram_margin_bytes"] < 0:',
        '        if False:', ["tests/pipeline/test_deploy.py::test_fit_verdicts_on_hand_made_figures"]),
    "Android metadata without the labels file": (
        "export/metadata_writer.py", "        associated_files=[args.labels])",
        "        associated_files=[])",
        ["tests/pipeline/test_deploy.py::test_android_metadata_round_trips"]),
    "int4 grid scale max|w|/8 (not ai-edge-quantizer's /7)": (
        "pipeline/int4_grid.py", "    return tf.maximum(bound, 1e-9) / QMAX",
        "    return tf.maximum(bound, 1e-9) / 8",
        ["tests/pipeline/test_int4_grid.py::test_weights_on_the_grid_are_stored_exactly"]),
    "int4 block scales not rounded to bfloat16": (
        "pipeline/int4_grid.py", "        scale = tf.cast(tf.cast(scale, tf.bfloat16), tf.float32)\n",
        "", ["tests/pipeline/test_int4_grid.py::test_weights_on_the_grid_are_stored_exactly"]),
    "int4-aware training projects instead of straight-through": (
        "pipeline/int4_grid.py", "                master.assign_add(w - grid)", "                master.assign(grid)",
        ["tests/pipeline/test_int4_grid.py::test_straight_through_training_moves_weights_across_grid_steps"]),
    "export.strip strips nothing": (
        "pipeline/run.py", "    after = strip(before)\n", "    after = before\n",
        ["tests/pipeline/test_run_text.py::test_text_lm_int4_aware_run"]),
    "--resume never restores an interrupted stage's epochs": (
        "pipeline/training.py",
        "        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup))\n", "",
        ["tests/pipeline/test_resume.py::test_kill_9_mid_stage_then_resume_keeps_the_finished_stages"]),
    "--resume retrains the finished stages": (
        "pipeline/resume.py", "        count += 1\n    return count", "        break\n    return count",
        ["tests/pipeline/test_resume.py"]),
    "a stage's settings left out of its resume hash": (
        "pipeline/resume.py", '"config": config_lib.to_dict(spec.config)})', '"config": None})',
        ["tests/pipeline/test_resume.py::test_a_changed_stage_invalidates_it_and_every_later_stage"]),
    "every worker of a multi-worker run writes the run directory": (
        "pipeline/run.py", "        if not distribute.is_chief(recipe.distribute):",
        "        if False:",
        ["tests/pipeline/test_distribute.py::test_a_worker_that_is_not_the_chief_trains_and_writes_nothing"]),
    "a failing worker leaves the others running": (
        "pipeline/launcher.py", "            if process.poll() is None:\n                _stop(process)",
        "            if process.poll() is None:\n                process.wait()",
        ["tests/pipeline/test_launcher.py"]),
    "search processes sharing a study each run every trial": (
        "pipeline/search_study.py", "    claimed = 0\n    for t in study.get_trials(deepcopy=False):",
        "    return 0\n    for t in study.get_trials(deepcopy=False):",
        ["tests/pipeline/test_search.py::test_a_trial_runs_only_while_fewer_than_the_trials_asked_for_are_claimed"]),
    "the search's stage cache never finds a match": (
        "pipeline/search.py", "                if count > best:", "                if False:",
        ["tests/pipeline/test_search.py::test_a_search_measures_each_trial_and_resumes"]),
    "a trial's library error stops the search": (
        "pipeline/search.py", "            except Exception as e:  # pylint: disable=broad-except\n"
        "                # One trial's", "            except GreenliteError as e:\n"
        "                # One trial's",
        ["tests/pipeline/test_search.py::test_a_trial_that_crashes_fails_alone"]),
    "a failed trial leaves its half-made directory": (
        "pipeline/search.py", "                    shutil.rmtree(directory, ignore_errors=True)",
        "                    pass",
        ["tests/pipeline/test_search.py::test_a_trial_that_crashes_fails_alone"]),
    "enqueued value sets are not run first": (
        "pipeline/search.py", "            for values in config.enqueue:",
        "            for values in []:",
        ["tests/pipeline/test_search.py::test_a_search_measures_each_trial_and_resumes"]),
    "a run judged on validation reads the test split": (
        "pipeline/run.py", "            keras_accuracy, keras_ce = training.evaluate(result, data.judged)",
        "            keras_accuracy, keras_ce = training.evaluate(result, data.test)",
        ["tests/pipeline/test_search.py::test_a_search_measures_each_trial_and_resumes"]),
    "a repeated value set counts as a trial": (
        "pipeline/search_study.py", "            and trial.user_attrs.get(\"same_as\") is None)",
        "            and True)",
        ["tests/pipeline/test_search.py::test_a_repeat_is_not_a_trial_and_the_next_tries_values_not_yet_measured"]),
    "after a repeat the sampler proposes again": (
        "pipeline/search.py", "                    study.enqueue_trial(dict(zip(config.space, pick)))",
        "                    pass",
        ["tests/pipeline/test_search.py::test_a_repeat_is_not_a_trial_and_the_next_tries_values_not_yet_measured"]),
    "the search's front holds only trials within budget": (
        "pipeline/search.py",
        "measured = [r for r in rows if r[\"loss\"] is not None and r[\"same_as\"] is None]",
        "measured = [r for r in rows if r[\"within_budget\"] and r[\"same_as\"] is None]",
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "best.yaml may take a trial out of budget": (
        "pipeline/search_front.py",
        "candidates = [r for r in rows if r[\"loss\"] <= budget and within_limits(",
        "candidates = [r for r in rows if within_limits(",
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "each conversion call starts its own converter child": (
        "export/convert.py", "    if _CONVERTER is None:\n", "    if True:\n",
        ["tests/export/test_convert.py::test_child_conversion_writes_the_file_or_reports_why"]),
    "a converter child that crashed is asked again": (
        "export/child.py", "            if self._proc is None or self._proc.poll() is not None:",
        "            if self._proc is None:",
        ["tests/export/test_child.py::test_a_server_keeps_its_child_and_a_failure_fails_only_its_request"]),
    "float32_sparse stores its zeros dense": (
        "export/convert.py", "converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]",
        "pass", ["tests/export/test_convert.py::test_float32_sparse_stores_a_pruned_model_sparse"]),
    "sparse path called engaged whatever the latency": (
        "pipeline/sparse_inference.py", "engaged=speedup >= ENGAGED_SPEEDUP,", "engaged=True,",
        ["tests/pipeline/test_sparse_inference.py"]),
    "policy xnnpack_latency prunes every layer": (
        "pipeline/stages/prune.py",
        "kept = [name for name in selected if policy.allow_pruning(model.get_layer(name))]",
        "kept = list(selected)",
        ["tests/pipeline/stages/test_prune.py::test_the_xnnpack_latency_policy_prunes_only_1x1_convolutions"]),
    "more clusters than weights left to tfmot": (
        "pipeline/stages/cluster.py", "            if points < cfg.number_of_clusters:",
        "            if False:",
        ["tests/pipeline/stages/test_cluster.py::test_more_clusters_than_weights_is_one_clear_error"]),
    "best.yaml ignores the selection margin": (
        "pipeline/search_front.py",
        "return row[\"loss\"] <= next(iter(config.budget.values())) - config.select_margin",
        "return row[\"loss\"] <= next(iter(config.budget.values()))",
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "a NaN training loss goes on": (
        "pipeline/health.py", "        if loss is not None and not math.isfinite(float(loss)):",
        "        if False:", ["tests/pipeline/test_health.py::test_a_nan_loss_stops_the_stage"]),
    "no best when no trial clears the selection margin": (
        "pipeline/search_front.py", "    return min(candidates, key=least_loss, default=None)",
        "    return None",
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "the search's cross_entropy objective is never measured": (
        "pipeline/search.py", '"cross_entropy": v.get("cross_entropy"), "loss": lost}',
        '"cross_entropy": None, "loss": lost}',
        ["tests/pipeline/test_search.py::test_cross_entropy_keeps_on_the_front_a_larger_file_the_accuracy_cannot_tell_apart"]),
    "most_accurate breaks ties by size alone": (
        "pipeline/search_front.py",
        'return r["loss"], float("inf") if entropy is None else entropy, size(r)',
        'return r["loss"], size(r)',
        ["tests/pipeline/test_search_front.py"]),
    "the margin's fallback ships the smallest": (
        "pipeline/search_front.py", "    return min(candidates, key=least_loss, default=None)",
        "    return min(candidates, key=lambda r: (size(r), r[\"loss\"]), default=None)",
        ["tests/pipeline/test_search_front.py"]),
    "best.yaml ignores the device's limits": (
        "pipeline/search_front.py",
        "if r[\"loss\"] <= budget and within_limits(r, config.limits)]",
        "if r[\"loss\"] <= budget]",
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "select: most_accurate ships the smallest": (
        "pipeline/search_front.py", 'r["loss"])) if config.select == "smallest"\n',
        'r["loss"])) if True\n',
        ["tests/pipeline/test_search.py::test_the_front_spans_every_measured_trial_and_best_is_within_budget"]),
    "a trial over a limit is feasible for the sampler": (
        "pipeline/search.py", "max([lost - budget] + [", "max([lost - budget] + 0 * [",
        ["tests/pipeline/test_search.py::test_a_trial_over_a_limit_is_infeasible_for_the_sampler"]),
    "the paired interval resamples the two files apart": (
        "pipeline/stats.py",
        "        draws += d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)",
        # Each file's hits drawn on their own (one split, as the test has).
        "        draws += (np.asarray(baseline_hits[0], float)[rng.integers(0, d.size, size=("
        "resamples, d.size))].mean(axis=1) - np.asarray(hits[0], float)[rng.integers("
        "0, d.size, size=(resamples, d.size))].mean(axis=1))",
        ["tests/pipeline/test_stats.py::test_pairs_are_resampled_together"]),
    "the front's test interval compares the reference with itself": (
        "pipeline/search.py",
        "stats.paired_bootstrap(reference_hits, hits)",
        "stats.paired_bootstrap(reference_hits, reference_hits)",
        ["tests/pipeline/test_search.py::test_a_search_measures_each_trial_and_resumes"]),
    "quantize preserve: auto preserves nothing": (
        "pipeline/stages/quantize.py", "                  (False, False): \"none\"}[sparse, clustered]",
        "                  (False, False): \"none\"}[False, False]",
        ["tests/pipeline/stages/test_quantize.py::test_pcqat_keeps_zeros_and_clusters"]),
    "quantize preserve: auto preserves what is not there": (
        "pipeline/stages/quantize.py", "                  (False, False): \"none\"}[sparse, clustered]",
        "                  (False, False): \"none\"}[True, True]",
        ["tests/pipeline/stages/test_quantize.py::test_qat_model_exports_to_int8_with_its_accuracy"]),
    "lr_schedule: cosine trains at a constant rate": (
        "pipeline/training.py", "    if cfg.lr_schedule == \"cosine\":", "    if False:",
        ["tests/pipeline/test_training.py"]),
    "training ignores augment_mixup": (
        "pipeline/training.py", "        train = mixed(train, cfg.augment_mixup, seed)",
        "        pass",
        ["tests/pipeline/test_augment.py::test_a_recipe_with_mixup_trains_on_blends"]),
    "mixup blends an image with itself": (
        "pipeline/augment.py", "tf.roll(order, -1, axis=0)", "order",
        ["tests/pipeline/test_augment.py::"
         "test_mixup_blends_each_image_with_another_keeping_its_label"]),
    "mixup's label is the smaller share's": (
        "pipeline/augment.py", "lam = tf.maximum(lam, 1.0 - lam)", "lam = tf.minimum(lam, 1.0 - lam)",
        ["tests/pipeline/test_augment.py::"
         "test_mixup_blends_each_image_with_another_keeping_its_label"]),
    "mixup without a teacher trains on the blends' labels": (
        "pipeline/training.py", "    if cfg.augment_mixup and teacher is None:",
        "    if False:",
        ["tests/pipeline/test_augment.py::test_mixup_needs_a_teacher"]),
    "a recipe with mixup and no teacher passes validation": (
        "pipeline/recipe.py",
        'if getattr(spec.config, "augment_mixup", 0) and teacher is None and spec.type != "distill":',
        "if False:",
        ["tests/pipeline/test_recipe.py::test_bad_recipes_are_rejected_with_one_clear_message"]),
    "distill's mixup refused without a teacher setting": (
        "pipeline/recipe.py", ' and teacher is None and spec.type != "distill":',
        " and teacher is None:",
        ["tests/pipeline/test_recipe.py::test_mixup_in_distill_needs_no_teacher_setting"]),
    "image shifts drawn from a stateful random op": (
        "pipeline/augment.py",
        "tf.random.stateless_uniform([tf.shape(x)[0], 2], seed, minval=0,",
        "tf.random.uniform([tf.shape(x)[0], 2], minval=0,",
        ["tests/pipeline/test_augment.py::test_the_shifts_are_reproducible_and_new_each_epoch"]),
    "the metadata's labels zip dated when written": (
        "export/metadata_writer.py", "    _fixed_zip_dates()\n", "",
        ["tests/pipeline/test_deploy.py::test_image_metadata_names_its_color_space"]),
    "Keras 3's hard_sigmoid taken for tf_keras' (0.2x + 0.5)": (
        "models/keras3_layers.py", '"mish": "mish", "silu": "swish", "swish": "swish"}',
        '"mish": "mish", "silu": "swish", "swish": "swish", "hard_sigmoid": "hard_sigmoid"}',
        ["tests/models/test_keras3_translate.py::test_activations_that_differ_between_the_two_kerases",
         "tests/models/test_keras3_translate.py::test_each_architecture_translates_to_equal_outputs"]),
    "Keras 3's leaky_relu given tf_keras' slope (0.3)": (
        "models/keras3_layers.py", "tf_keras.layers.LeakyReLU(\n        alpha=0.2,",
        "tf_keras.layers.LeakyReLU(\n       ",
        ["tests/models/test_keras3_translate.py::test_activations_that_differ_between_the_two_kerases"]),
    "LeakyReLU's negative_slope not renamed": (
        "models/keras3_layers.py", 'RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}',
        "RENAMED = {}",
        ["tests/models/test_keras3_translate.py::test_each_architecture_translates_to_equal_outputs"]),
    "a Keras 3 layer's weights copied in reverse order": (
        "models/keras3.py", "    target.set_weights(weights)\n",
        "    target.set_weights(weights[::-1])\n",
        ["tests/models/test_keras3_translate.py::test_each_architecture_translates_to_equal_outputs"]),
    "a Keras 3 model's translation is not checked on data": (
        "models/__init__.py", "    difference = keras3_lib.verify(source, translation, sample)",
        "    difference = 0.0",
        ["tests/models/test_keras3_translate.py::test_intake_refuses_a_translation_that_computes_otherwise"]),
    "the translation checked on random inputs instead of the data's": (
        "pipeline/run.py", "                               sample=self.sample)", ")",
        ["tests/pipeline/test_run_keras3.py::test_a_keras3_model_is_translated_compressed_and_exported"]),
    "a Keras 3 file handed to tf_keras": (
        "models/__init__.py",
        "        version = keras3_lib.written_by(name) if os.path.exists(name) else None",
        "        version = None",
        ["tests/models/test_keras3_intake.py::test_keras3_files_are_told_from_tf_keras_ones"]),
    "a Keras 3 file from a newer Keras accepted": (
        "models/keras3.py", "    if _version_tuple(version) > _version_tuple(installed):",
        "    if False:",
        ["tests/models/test_keras3_intake.py::test_files_that_will_not_do_get_one_line_each"]),
    "training stages run on a model tf_keras cannot rebuild": (
        "pipeline/run.py", "            if training:\n", "            if False:\n",
        ["tests/pipeline/test_run_keras3.py::"
         "test_an_untranslatable_model_is_refused_for_training_before_anything_is_written"]),
    "TF select ops not named": (
        "pipeline/run.py", "    found = flex_ops(path)\n", "    found = []\n",
        ["tests/pipeline/test_run_keras3.py::test_tensorflow_select_ops_are_named_per_variant"]),
    "a Keras 3 copy written without the check against the stage's model": (
        "models/keras3.py", "        if difference > tolerance:", "        if False:",
        ["tests/models/test_keras3_translate.py::test_a_keras3_copy_that_computes_otherwise_is_not_written"]),
    "a BatchNorm after an activated convolution annotated for QAT": (
        "pipeline/layers.py", "                if activated:", "                if False:",
        ["tests/pipeline/test_layers.py::"
         "test_batchnorm_after_a_convolution_with_its_own_activation_stays_float"]),
    # Issue 33's ten examples: bugs that passed the suite before its new tests.
    "the cold first inference counted as a timed run": (
        "export/benchmark.py", "    runs = [invoke_ms() for _ in range(num_runs)]",
        "    runs = [first_ms] + [invoke_ms() for _ in range(num_runs - 1)]",
        ["tests/export/test_benchmark_timing.py::test_the_cold_call_and_the_warm_up_are_not_timed"]),
    "the baseline float32 taken from any stage": (
        "pipeline/report.py", 'v["stage"] == first["name"]\n                      and v["format"]',
        'v["format"]',
        ["tests/pipeline/test_report.py::test_the_baseline_is_the_first_stages_float32_file_or_none"]),
    "an infinite loss goes on": (
        "pipeline/health.py", "not math.isfinite(float(loss))", "math.isnan(float(loss))",
        ["tests/pipeline/test_health.py::test_a_loss_that_is_not_finite_stops_the_stage"]),
    "a folder's classes checked against a larger declaration only": (
        "pipeline/data/image_folder.py", "cfg.num_classes != len(classes)",
        "cfg.num_classes > len(classes)",
        ["tests/pipeline/data/test_labels.py::test_image_folder_classes_must_match_the_declaration"]),
    "squeeze-excite Multiply left out of the channel groups": (
        "pipeline/channels.py", 'ELEMENTWISE = ("Add", "Subtract", "Multiply",',
        'ELEMENTWISE = ("Add", "Subtract",',
        ["tests/pipeline/test_channels.py::test_a_squeeze_excite_gate_prunes_with_the_channels_it_gates"]),
    "the data files dropped from the resume hash": (
        "pipeline/resume.py", '            "inputs": _input_fingerprints(recipe)}', "            }",
        ["tests/pipeline/test_resume.py::test_the_hash_covers_the_data_files_of_every_source"]),
    "the C array not declared 16-byte aligned": (
        "export/micro.py", 'f"alignas(16) const unsigned char', 'f"const unsigned char',
        ["tests/export/test_micro.py::test_the_c_array_compiles_and_holds_the_file"]),
    "the gate's perplexity tolerance read as a fraction": (
        "export/compat.py", 'Budget("max_rise_percent", 2.0)', 'Budget("max_rise_percent", 200.0)',
        ["tests/export/test_compat.py::"
         "test_the_gate_tolerates_two_percent_of_perplexity_and_one_point_of_accuracy"]),
    "per_channel clustering done per tensor": (
        "pipeline/stages/cluster.py", "cluster_per_channel=cfg.per_channel)",
        "cluster_per_channel=False)",
        ["tests/pipeline/stages/test_cluster.py::test_per_channel_clustering"]),
    "the .old-* debris of a killed swap never cleaned": (
        "pipeline/rundir.py", 'for path in _dead_dirs(target, (".tmp-", ".old-")):',
        'for path in _dead_dirs(target, (".tmp-",)):',
        ["tests/pipeline/test_rundir.py::"
         "test_a_run_killed_mid_swap_leaves_old_debris_the_next_run_removes"]),
    "battery days limited from above like the bytes": (
        "pipeline/search_front.py",
        "return ((limit - value) if key in AT_LEAST_LIMITS else (value - limit)) / limit",
        "return (value - limit) / limit",
        ["tests/pipeline/test_search.py::"
         "test_board_energy_as_an_objective_and_battery_days_as_a_floor"]),
    "an Ethos-U board judged on the CPU path's arena": (
        "pipeline/verdicts.py", "    if compiled and compiled.get(\"compiled\"):",
        "    if False:",
        ["tests/pipeline/test_deploy.py::"
         "test_an_npu_board_is_judged_on_velas_figures_for_its_own_accelerator"]),
    "a U85 build's DRAM weights not counted as the model's bytes": (
        "pipeline/verdicts.py",
        'compiled["flash_bytes"] or compiled["dram_bytes"] or 0',
        'compiled["flash_bytes"] or 0',
        ["tests/pipeline/test_deploy.py::"
         "test_an_npu_board_is_judged_on_velas_figures_for_its_own_accelerator"]),
}


def copy_tree(destination):
    """The working tree as git sees it (tracked and untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    shutil.rmtree(destination, ignore_errors=True)
    for name in files:
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(destination, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(destination, name))


def check(name, scratch):
    path, text, replacement, tests = MUTATIONS[name]
    copy_tree(scratch)
    with open(os.path.join(scratch, path)) as f:
        source = f.read()
    if source.count(text) != 1:
        return f"STALE: {text!r} occurs {source.count(text)} times in {path}"
    with open(os.path.join(scratch, path), "w") as f:
        f.write(source.replace(text, replacement))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-o", "addopts=--import-mode=importlib", "-rfE"] + tests,
                            cwd=scratch, capture_output=True, text=True)
    failed = sorted({line.split()[1].split(" - ")[0] for line in result.stdout.splitlines()
                     if line.startswith(("FAILED ", "ERROR "))})
    return ", ".join(failed) if failed else "NONE (unguarded)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated names (default: all)")
    parser.add_argument("--scratch", default="/tmp/greenlite-mutations")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(MUTATIONS)
    print("| change to the product code | failing tests | seconds |")
    print("|---|---|---:|")
    for name in names:
        start = time.perf_counter()
        outcome = check(name, args.scratch)
        print(f"| {name} | {outcome} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
