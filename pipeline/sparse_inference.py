"""Whether a pruned file can use XNNPACK's sparse inference, and whether it did.

XNNPACK runs a float32 CNN's 1x1 convolutions as sparse matrix products when
their weights reach it in sparse form (DENSIFY ops, which the converter's
EXPERIMENTAL_SPARSITY writes: the `float32_sparse` format) and the subgraph
meets its rules (a 3x3 stride-2 stem on 3 channels, at least 2/3 zeros in the
1x1 convolutions, global pooling at the end; tfmot's PruneForLatencyOnXNNPack
prunes to them). Whether the runtime then takes the sparse path is not
reported by any API, so it is judged from latency: the sparse file's median
against the same stage's dense float32 file, measured in the same run.
"""

# A sparse file this much faster than its dense twin took the sparse path;
# below it, the runtime densified the weights and ran the dense kernels.
ENGAGED_SPEEDUP = 1.1


def verdicts(variants):
    """Sets `sparse_inference` on each variant (pipeline.variants.Variant) it concerns.

    Sparse files (a format with a dense twin: float32_sparse): DENSIFY op count,
    both medians and sizes as converted, the speed-up and `engaged` (None when
    the stage has no dense twin to compare). Pruned files stored dense (float
    formats) or in int8: why they cannot use the sparse path.
    """
    from export import formats
    ok = [v for v in variants if v.ok]
    by_format = {(v.stage, v.format): v for v in ok}
    for v in ok:
        spec = formats.get(v.format)
        figures = v.figures
        if spec.dense_twin:
            densify = figures.get("densify_ops") or 0
            twin = by_format.get((v.stage, spec.dense_twin))
            # Both sizes as converted (the benchmark's), whatever metadata adds later.
            record = {"stored_sparse": densify > 0, "densify_ops": densify,
                      "size_bytes": figures["size_bytes"], "p50_ms": figures["latency_ms"]["p50"],
                      "dense_variant": twin and twin.name,
                      "dense_p50_ms": twin and twin.figures["latency_ms"]["p50"],
                      "dense_size_bytes": twin and twin.figures["size_bytes"]}
            if not densify:
                record.update(engaged=False, why="no weight is sparse enough to be stored "
                              "sparse (the converter keeps a tensor dense unless most of it "
                              "is zero)")
            elif twin is None:
                record.update(engaged=None, why=f"export {v.stage} as {spec.dense_twin} too, "
                              "to measure it against the dense file")
            else:
                speedup = twin.figures["latency_ms"]["p50"] / figures["latency_ms"]["p50"]
                record.update(speedup=speedup, engaged=speedup >= ENGAGED_SPEEDUP,
                              why=None if speedup >= ENGAGED_SPEEDUP else
                              "this runtime densifies the weights when it loads the file and "
                              "runs the dense kernels (XNNPACK builds without sparse kernels "
                              "for this CPU, or the graph breaks its rules)")
            v.sparse_inference = record
        elif v.structure.get("sparsity") and spec.sparse_inference:
            v.sparse_inference = {
                "stored_sparse": False, "engaged": False,
                "why": "its zeros are stored dense; export the stage as "
                       + " or ".join(f for f in formats.names(sparse_inference=True)
                                     if formats.get(f).dense_twin)}
        elif v.structure.get("sparsity"):
            v.sparse_inference = {
                "stored_sparse": False, "engaged": False,
                "why": f"XNNPACK has no sparse path for {v.format} files (sparse int8 "
                       "does not even prepare in its delegate)"}


def note(v):
    """One report line for a variant with a `sparse_inference` record, else None."""
    s = v.get("sparse_inference")
    if not s:
        return None
    if not s["stored_sparse"]:
        return f"`{v['name']}` cannot use XNNPACK's sparse inference: {s['why']}"
    text = (f"`{v['name']}` stores its weights sparse ({s['densify_ops']} DENSIFY op(s))"
            + (f": {s['size_bytes']:,} bytes against {s['dense_size_bytes']:,} dense "
               f"({s['size_bytes'] / s['dense_size_bytes']:.3f}x, file bytes)"
               if s.get("dense_size_bytes") else ""))
    if s["engaged"] is None:
        return f"{text}; sparse path not measured: {s['why']}"
    return (f"{text}; median {s['p50_ms']:.4g} ms against {s['dense_p50_ms']:.4g} ms dense "
            f"({s['speedup']:.2f}x): XNNPACK's sparse path "
            + ("engaged" if s["engaged"] else f"did NOT engage: {s['why']}"))
