"""Truncated-SVD factorization of Dense and Conv2D kernels, and the graph surgery.

Dense kernel W (m x n)            ->  Dense(r, no bias, linear) then Dense(n, bias, activation)
Conv2D kernel (kh, kw, cin, cout) ->  Conv2D(r, kh x kw, strides, no bias, linear)
                                      then Conv2D(cout, 1 x 1, bias, activation)

W (as a matrix of (kh*kw*cin) x cout for convolutions) = U S V^T; keeping r
singular values, A = U_r sqrt(S_r) and B = sqrt(S_r) V_r^T, so A @ B is the
best rank-r approximation (Eckart-Young). The layers are replaced in the
model's config (so functional graphs with branches keep their wiring), and
every other layer keeps its weights.
"""
import math

import numpy as np


def choose_rank(singular_values, energy=None, ratio=None, rank=None):
    """The rank to keep: explicit, a fraction of the full rank, or by energy.

    energy: the smallest r whose singular values hold that fraction of
    sum(s^2). ratio: ceil(ratio * full rank).
    """
    full = len(singular_values)
    if rank is not None:
        return min(rank, full)
    if ratio is not None:
        return max(1, math.ceil(ratio * full))
    squared = np.asarray(singular_values, dtype=np.float64) ** 2
    cumulative = np.cumsum(squared) / squared.sum()
    return int(np.searchsorted(cumulative, energy - 1e-12) + 1)


def factor(matrix, r):
    """(A, B, relative Frobenius error, singular values) for the rank-r factorization of a 2-D matrix."""
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:r])
    a = u[:, :r] * root
    b = root[:, None] * vt[:r]
    error = float(np.linalg.norm(matrix - a @ b) / max(np.linalg.norm(matrix), 1e-30))
    return a.astype(np.float32), b.astype(np.float32), error, s


def costs(kind, kernel_shape, r, output_positions=1):
    """(params, MACs) of the kernel before and after factorizing to rank r (biases excluded).

    output_positions: output height x width for convolutions (1 for Dense).
    """
    if kind == "Dense":
        m, n = kernel_shape
        return (m * n, m * n), (r * (m + n), r * (m + n))
    kh, kw, cin, cout = kernel_shape
    before = kh * kw * cin * cout
    after = kh * kw * cin * r + r * cout
    return (before, before * output_positions), (after, after * output_positions)


def replace_layers(model, factors):
    """A new model in which each named layer is replaced by its two factors.

    Args:
      model: a functional or Sequential tf_keras model.
      factors: {layer name: (A, B)} with A, B as returned by `factor`, for
        Dense or Conv2D layers called once.
    Returns:
      The new model; unchanged layers keep their weights.
    """
    from pipeline.backend import keras
    config = model.get_config()
    by_name = {l.name: l for l in model.layers}
    sequential = isinstance(model, keras.Sequential)
    new_layers = []
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name not in factors:
            new_layers.append(entry)
            continue
        first, second = _factor_configs(by_name[name], factors[name][0].shape[-1])
        if sequential:
            new_layers += [first, second]
            continue
        first["inbound_nodes"] = entry["inbound_nodes"]
        first["name"] = first["config"]["name"]
        second["inbound_nodes"] = [[[first["name"], 0, 0, {}]]]
        second["name"] = second["config"]["name"]
        new_layers += [first, second]
    config["layers"] = new_layers
    if not sequential:
        renamed = {name: f"{name}_v" for name in factors}
        for entry in config["layers"]:
            for node in entry.get("inbound_nodes", []):
                for link in node:
                    if link[0] in renamed:
                        link[0] = renamed[link[0]]
        for key in ("output_layers", "input_layers"):
            config[key] = [[renamed.get(l[0], l[0])] + list(l[1:]) for l in config[key]]
        rebuilt = keras.Model.from_config(config)
    else:
        rebuilt = keras.Sequential.from_config(config)
    for layer in rebuilt.layers:
        base = layer.name[:-2] if layer.name[-2:] in ("_u", "_v") else None
        if base in factors:
            a, b = factors[base]
            old = by_name[base]
            if layer.name.endswith("_u"):
                kernel = a if old.__class__.__name__ == "Dense" else a.reshape(
                    tuple(old.kernel.shape[:3]) + (a.shape[-1],))
                layer.set_weights([kernel])
            else:
                kernel = b if old.__class__.__name__ == "Dense" else b.reshape((1, 1) + b.shape)
                layer.set_weights([kernel] + ([old.bias.numpy()] if old.use_bias else []))
        elif layer.name in by_name:
            layer.set_weights(by_name[layer.name].get_weights())
    return rebuilt


def _factor_configs(layer, r):
    """Keras layer configs (class_name + config) of the two factor layers."""
    cfg = layer.get_config()
    name = cfg["name"]
    if layer.__class__.__name__ == "Dense":
        first = dict(cfg, name=f"{name}_u", units=r, use_bias=False, activation="linear",
                     activity_regularizer=None)
        second = dict(cfg, name=f"{name}_v")
        return ({"class_name": "Dense", "config": first},
                {"class_name": "Dense", "config": second})
    first = dict(cfg, name=f"{name}_u", filters=r, use_bias=False, activation="linear",
                 activity_regularizer=None)
    second = dict(cfg, name=f"{name}_v", kernel_size=(1, 1), strides=(1, 1), padding="valid",
                  dilation_rate=(1, 1), groups=1)
    return ({"class_name": "Conv2D", "config": first},
            {"class_name": "Conv2D", "config": second})
