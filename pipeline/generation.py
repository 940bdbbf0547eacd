"""The export phase's generation step: a LiteRT-LM bundle of each language-model variant.

For a language-model run, every converted variant whose format has a
generative twin (export.generative.TWIN_OF: float32, dynamic_range and the
int4 formats) gets `export/<variant>.litertlm`, written and checked by
export/bundle_lm.py in a child process (one per stage: the model is loaded
and re-expressed once), then timed by `export.generate --benchmark` in a
child at 1 thread and at every CPU thread. The variant's `generation` block
holds the bundle's record, its quality against the Keras model (KL, top-1),
its greedy continuations and both timings; the report adds energy per
generated token (the same estimate as energy per inference, labelled).
"""
import dataclasses
import json
import os
from typing import Literal, Optional

from pipeline.config import at_least


@dataclasses.dataclass
class GenerationConfig:
    """The `generation:` section: LiteRT-LM bundles of a language model's variants."""
    # auto: for language-model runs (data.source text); never: no bundles.
    litertlm: Literal["auto", "never"] = "auto"
    # Prefill signature lengths; default 8 and half the context.
    prefill_lengths: Optional[list[int]] = None
    # The bundle's tokenizer: a Hugging Face tokenizer.json or a SentencePiece
    # .model whose vocabulary is the model's; default greenlite's byte-level one.
    tokenizer: Optional[str] = None
    # Test windows whose next-token distributions are compared with Keras's.
    quality_windows: int = dataclasses.field(default=32, metadata=at_least(1))
    # Bytes of test text before the timed generation (capped below the context).
    benchmark_prompt_bytes: int = dataclasses.field(default=64, metadata=at_least(1))
    # Timed generations per thread count, after one warm-up.
    benchmark_runs: int = dataclasses.field(default=5, metadata=at_least(1))

    def validate(self):
        if self.prefill_lengths is not None and (
                not self.prefill_lengths or any(not isinstance(t, int) or isinstance(t, bool)
                                                or t < 1 for t in self.prefill_lengths)):
            raise ValueError(f"prefill_lengths: got {self.prefill_lengths!r}; expected a list "
                             "of positive token counts, e.g. [8, 32]")
        if self.tokenizer is not None and not self.tokenizer.endswith((".json", ".model")):
            raise ValueError(f"tokenizer: got {self.tokenizer!r}; allowed: a Hugging Face "
                             "tokenizer.json or a SentencePiece .model file")


def wanted(recipe, task):
    """Whether this run writes bundles."""
    return recipe.generation.litertlm == "auto" and task == "language_model"


def bundle_variants(workdir, variants, stages, recipe, test_data, custom_object_modules, log):
    """Fills each eligible variant's `generation` block (module doc); a failure is the
    block's `error`, never the variant's (its window file stays good)."""
    from export import child
    from export.generative import TWIN_OF
    cfg = recipe.generation
    by_stage = {}
    for v in variants:
        if v.ok and v.format in TWIN_OF:
            by_stage.setdefault(v.stage, []).append(v)
    prompt = _benchmark_prompt(os.path.join(test_data, "x.npy"), cfg.benchmark_prompt_bytes)
    for stage, group in by_stage.items():
        log(f"generation: LiteRT-LM bundles of {stage} "
            f"({', '.join(v.format for v in group)}): greedy checked against Keras ...")
        out_json = os.path.join("export", f"{stage}.bundles.json")
        args = ["-m", "export.bundle_lm",
                f"--model={stages[stage]['model_path']}",
                f"--formats={','.join(v.format for v in group)}",
                f"--output_prefix={os.path.join('export', stage)}",
                f"--windows={os.path.join(os.path.relpath(test_data, workdir), 'x.npy')}",
                f"--num_windows={cfg.quality_windows}", f"--json={out_json}"]
        args += [f"--custom_objects={m}" for m in custom_object_modules]
        if cfg.prefill_lengths:
            args.append(f"--prefill={','.join(str(t) for t in cfg.prefill_lengths)}")
        if cfg.tokenizer:
            args.append(f"--tokenizer={os.path.abspath(cfg.tokenizer)}")
        stdout, error = child.run(args, timeout=3600, what="the bundle writer", cwd=workdir)
        for line in (stdout or "").splitlines():
            if line.startswith("  "):
                log(line)
        if error:
            for v in group:
                v.generation = {"error": f"bundle writer failed: {error}"}
            log(f"  FAILED: {error}")
            continue
        with open(os.path.join(workdir, out_json)) as f:
            records = json.load(f)
        for v in group:
            record = records[v.format]
            if "error" not in record:
                record["benchmark"] = _benchmark(workdir, record, prompt, cfg.benchmark_runs)
                b = record["benchmark"]
                if "threads_1" in b:
                    log(f"  {v.name}: decode {b['threads_1']['decode_tokens_per_s']:,.0f} "
                        f"tokens/s (1 thread), time to first token "
                        f"{b['threads_1']['time_to_first_token_ms']:.3f} ms for "
                        f"{b['threads_1']['prompt_tokens']} prompt tokens")
            v.generation = record
    _compare_speeds(variants, log)


def _benchmark_prompt(x_path, length):
    """The first `length` bytes of the first test window (a prompt from the run's text)."""
    import numpy as np
    window = np.load(x_path, mmap_mode="r")[0]
    data = bytes(int(t) for t in window[:length])
    # A prompt must be valid UTF-8 text: drop a character cut at the end.
    return data.decode("utf-8", errors="ignore")


def _benchmark(workdir, record, prompt, runs):
    """{threads_1, threads_all} of export.generate --benchmark, each in its own child."""
    from export import child
    context = record["context"]
    prompt = prompt.encode()[:max(1, context // 2)].decode("utf-8", errors="ignore")
    out = {}
    for key, threads in (("threads_1", 1), ("threads_all", os.cpu_count() or 1)):
        if key == "threads_all" and threads == 1:
            break
        stdout, error = child.run(
            ["-m", "export.generate", f"--model={record['path']}", f"--prompt={prompt}",
             f"--max_tokens={context - len(prompt.encode())}", f"--threads={threads}",
             "--benchmark", f"--runs={runs}"], timeout=1800, what="the generation benchmark",
            cwd=workdir)
        out[key] = {"error": error} if error else json.loads(stdout[stdout.index("{"):])
    return out


def _compare_speeds(variants, log):
    """Per stage, each quantized bundle's decode speed against its float32 twin's (same run,
    1 thread); a slower one says so, with the runtime's ops to look at named in the note."""
    floats = {v.stage: v for v in variants if v.format == "float32"
              and _decode_speed(v) is not None}
    for v in variants:
        speed = _decode_speed(v)
        base = floats.get(v.stage)
        if speed is None or base is None or v is base:
            continue
        ratio = speed / _decode_speed(base)
        v.generation["decode_speed_vs_float32"] = ratio
        if ratio < 1:
            extra = extra_ops(v.generation.get("decode_ops", {}),
                              base.generation.get("decode_ops", {}))
            v.generation["slower_than_float32"] = (
                f"decodes at {ratio:.2f}x float32's speed (1 thread, this CPU)"
                + (f"; its decode graph runs {extra}, which float32's does not" if extra else ""))
            log(f"  {v.name}: decodes SLOWER than float32: {v.generation['slower_than_float32']}")


def _decode_speed(v):
    block = getattr(v, "generation", None) or {}
    figures = (block.get("benchmark") or {}).get("threads_1") or {}
    return figures.get("decode_tokens_per_s")


def extra_ops(ops, float_ops):
    """The ops a decode graph runs beyond float32's, as text ("12 DEQUANTIZE"): where a
    slower file's time goes (the runtime reports no per-op times; this is the graph's
    difference, e.g. weight-only int4 dequantizing every weight at every token)."""
    extra = {op: n - float_ops.get(op, 0) for op, n in ops.items() if n > float_ops.get(op, 0)}
    return ", ".join(f"{n} {op}" for op, n in sorted(extra.items(), key=lambda kv: -kv[1]))
