"""Structured (channel) pruning: which channels can go together, and the smaller model without them.

Removing a convolution's filter (or a Dense unit) also removes the matching
input channel of every layer that reads it, through whatever lies between:
BatchNormalization, activations, pooling, dropout, a DepthwiseConv2D (whose
channels are tied to its input's), a Flatten (each channel repeated at every
position, channels last). Channels that meet in an `Add` (a residual block)
must go together: their producers form one *group* that keeps the same
indices. A `Concatenate` joins its inputs' channels side by side. The model's
output layer is never pruned; a layer whose channel mapping greenlite does
not know (a Reshape, a custom layer) makes the groups that reach it
unprunable, and says so: a pattern it cannot follow is reported, not guessed.

`analyze(model)` finds the groups; `shrink(model, keep)` rebuilds a plain,
smaller Keras model (no masks, no wrappers) with the kept channels' weights.
"""
import dataclasses

import numpy as np

from pipeline.errors import RecipeError

PRODUCERS = ("Conv2D", "Dense")
# Layers whose output channels are their input's, one for one.
PASS_THROUGH = ("BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ELU", "PReLU",
                "Dropout", "SpatialDropout2D", "GaussianNoise", "MaxPooling2D",
                "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                "ZeroPadding2D", "Cropping2D", "DepthwiseConv2D", "UpSampling2D")
ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
# Pass-through layers with per-channel weights (sliced like the channels).
PER_CHANNEL_WEIGHTS = ("BatchNormalization", "DepthwiseConv2D", "PReLU")


@dataclasses.dataclass
class Group:
    """Channels that are kept or removed together: one producer's outputs, or the
    producers whose outputs meet in an elementwise op."""
    size: int
    producers: list = dataclasses.field(default_factory=list)
    # Why the group cannot be pruned; None when it can.
    blocked: str = None


@dataclasses.dataclass
class Space:
    """A tensor's last axis: segments of groups side by side, each repeated
    `repeat` times after a Flatten (index = position * width + channel)."""
    segments: list  # [group id]
    repeat: int = 1


class Analysis:
    """The channel groups of a model (see `analyze`)."""

    def __init__(self, model):
        self.model = model
        self.layers = {l.name: l for l in model.layers}
        self.groups = []
        self.parent = []
        self.spaces = {}  # layer name -> Space of its output
        self.inputs = {}  # layer name -> [input layer names]

    def new_group(self, size, producer=None, blocked=None):
        self.groups.append(Group(size, [producer] if producer else [], blocked))
        self.parent.append(len(self.parent))
        return len(self.groups) - 1

    def find(self, g):
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            self.groups[a].producers += self.groups[b].producers
            self.groups[a].blocked = self.groups[a].blocked or self.groups[b].blocked

    def block(self, space, reason):
        for g in space.segments:
            root = self.find(g)
            self.groups[root].blocked = self.groups[root].blocked or reason

    def width(self, space):
        return sum(self.groups[self.find(g)].size for g in space.segments)

    def prunable(self):
        """{root group id: Group} of the groups that can lose channels."""
        roots = {self.find(g) for g in range(len(self.groups))}
        return {r: self.groups[r] for r in sorted(roots)
                if self.groups[r].producers and not self.groups[r].blocked}

    def unprunable(self):
        """{producer layer name: why its channels stay} for producers that cannot be pruned."""
        out = {}
        for r in {self.find(g) for g in range(len(self.groups))}:
            group = self.groups[r]
            if group.blocked:
                for p in group.producers:
                    out[p] = group.blocked
        return out

    def group_of(self, producer):
        for r, group in ((self.find(g), self.groups[self.find(g)]) for g in range(len(self.groups))):
            if producer in group.producers:
                return r
        return None


def _graph(model):
    """[(name, class name, config, [input names])] in topological order; model outputs."""
    config = model.get_config()
    entries = config.get("layers", [])
    graph = []
    for k, entry in enumerate(entries):
        name = entry["config"]["name"]
        if "inbound_nodes" not in entry:  # Sequential
            inbound = [entries[k - 1]["config"]["name"]] if k > 0 else []
            if k == 0 and entry["class_name"] != "InputLayer":
                graph.append(("__input__", "InputLayer", {}, []))
                inbound = ["__input__"]
        else:
            nodes = entry.get("inbound_nodes", [])
            if len(nodes) > 1:
                raise RecipeError(f"prune_channels: layer {name!r} is called {len(nodes)} times "
                                  "(a shared layer); channel pruning needs each layer once")
            inbound = [i[0] for node in nodes for i in node if isinstance(i, (list, tuple))]
        graph.append((name, entry["class_name"], entry["config"], inbound))
    if "output_layers" in config:
        outputs = [o[0] for o in config["output_layers"]]
    else:
        outputs = [graph[-1][0]]
    return graph, outputs


def analyze(model):
    """Follows every channel of `model` from its producer to its consumers; returns an Analysis."""
    a = Analysis(model)
    graph, outputs = _graph(model)
    for name, kind, config, inbound in graph:
        a.inputs[name] = inbound
        ins = [a.spaces[i] for i in inbound if i in a.spaces]
        layer = a.layers.get(name)
        out_width = int(layer.output_shape[-1]) if layer is not None and not isinstance(
            layer.output_shape, list) else None
        if kind == "InputLayer" or not ins:
            width = out_width if out_width is not None else int(model.inputs[0].shape[-1])
            a.spaces[name] = Space([a.new_group(width, blocked="the model's input")])
        elif kind in PRODUCERS and not (kind == "Conv2D" and config.get("groups", 1) != 1):
            if ins[0].repeat != 1 and kind == "Conv2D":
                a.block(ins[0], f"{kind} {name}: reads a flattened tensor")
            a.spaces[name] = Space([a.new_group(out_width, producer=name)])
        elif kind in PASS_THROUGH and not (kind == "DepthwiseConv2D"
                                           and config.get("depth_multiplier", 1) != 1):
            a.spaces[name] = ins[0]
        elif kind in ELEMENTWISE and len(ins) > 1:
            first = ins[0]
            if any(len(s.segments) != len(first.segments) or s.repeat != first.repeat
                   for s in ins[1:]):
                for s in ins:
                    a.block(s, f"{kind} {name}: its inputs' channels do not line up")
            else:
                for s in ins[1:]:
                    for g, h in zip(first.segments, s.segments):
                        a.union(g, h)
            a.spaces[name] = first
        elif kind == "Concatenate" and config.get("axis", -1) in (-1, len(layer.output_shape) - 1):
            if any(s.repeat != 1 for s in ins):
                for s in ins:
                    a.block(s, f"Concatenate {name}: joins flattened tensors")
            a.spaces[name] = Space([g for s in ins for g in s.segments])
        elif kind == "Flatten" and ins[0].repeat == 1:
            shape = layer.input_shape
            a.spaces[name] = Space(ins[0].segments, int(np.prod(shape[1:-1])) if len(shape) > 2
                                   else 1)
        else:
            for s in ins:
                a.block(s, f"{kind} {name}: greenlite cannot follow channels through it")
            a.spaces[name] = Space([a.new_group(out_width or 1, blocked=f"the output of {kind} "
                                                f"{name}")])
    for name in outputs:
        a.block(a.spaces[name], "feeds the model's output")
    return a


def scores(analysis, criterion):
    """{root group: per-channel importance} summed over the group's producers.

    `l1`/`l2`: the norm of each output channel's kernel slice; `bn_gamma`:
    |gamma| of the BatchNormalizations that read the group (l1 where none does).
    """
    out = {}
    for root, group in analysis.prunable().items():
        total = np.zeros(group.size)
        for producer in group.producers:
            kernel = analysis.layers[producer].get_weights()[0]
            flat = np.abs(kernel.reshape(-1, kernel.shape[-1]))
            total += flat.sum(0) if criterion != "l2" else np.sqrt((flat ** 2).sum(0))
        if criterion == "bn_gamma":
            gammas = [analysis.layers[n].get_weights()[0] for n, s in analysis.spaces.items()
                      if type(analysis.layers.get(n)).__name__ == "BatchNormalization"
                      and analysis.layers[n].scale and [analysis.find(g) for g in s.segments] == [root]]
            if gammas:
                total = np.abs(np.sum(gammas, axis=0))
        out[root] = total
    return out


def choose(analysis, ratios, criterion="l1", ranking="layer", min_channels=1):
    """{root group: sorted kept channel indices}.

    Args:
      ratios: {root group: fraction of its channels to remove}.
      criterion: `l1`, `l2` or `bn_gamma` (see `scores`).
      ranking: `layer` removes each group's own weakest channels; `global`
        compares channels across groups (each group's scores divided by its
        mean) and removes the weakest overall, as many as the ratios add up to.
      min_channels: every group keeps at least this many channels.
    """
    importance = scores(analysis, criterion)
    keep = {}
    if ranking == "global":
        entries = [(s / (importance[r].mean() or 1.0), r, i)
                   for r in ratios for i, s in enumerate(importance[r])]
        budget = int(round(sum(ratios[r] * analysis.groups[r].size for r in ratios)))
        removed = {r: set() for r in ratios}
        for _, r, i in sorted(entries):
            if budget <= 0:
                break
            if analysis.groups[r].size - len(removed[r]) > min_channels:
                removed[r].add(i)
                budget -= 1
        for r in ratios:
            keep[r] = [i for i in range(analysis.groups[r].size) if i not in removed[r]]
    else:
        for r, ratio in ratios.items():
            size = analysis.groups[r].size
            n = max(min(size, min_channels), size - int(round(ratio * size)))
            keep[r] = sorted(np.argsort(-importance[r], kind="stable")[:n].tolist())
    return keep


def shrink(analysis, keep):
    """A new, plain Keras model without the channels `keep` leaves out.

    `keep`: {root group: kept channel indices}; other groups keep all.
    """
    model = analysis.model

    def kept(space):
        """Indices into the tensor's last axis that survive."""
        index, offset = [], 0
        width = analysis.width(space)
        for g in space.segments:
            root = analysis.find(g)
            size = analysis.groups[root].size
            index += [offset + i for i in keep.get(root, range(size))]
            offset += size
        return np.asarray([p * width + i for p in range(space.repeat) for i in index], int)

    config = model.get_config()
    entries = config["layers"]
    sizes = {}
    for entry in entries:
        name, kind = entry["config"]["name"], entry["class_name"]
        if kind in PRODUCERS and name in analysis.spaces:
            root = analysis.find(analysis.spaces[name].segments[0])
            if root in keep:
                key = "filters" if kind == "Conv2D" else "units"
                entry["config"][key] = sizes[name] = len(keep[root])
    new = model.__class__.from_config(config)

    for layer in new.layers:
        name = layer.name
        old = analysis.layers[name]
        weights = old.get_weights()
        if not weights:
            continue
        kind = type(old).__name__
        if kind in PRODUCERS:
            inputs = [i for i in analysis.inputs[name] if i in analysis.spaces]
            in_index = kept(analysis.spaces[inputs[0]])
            out_index = kept(analysis.spaces[name])
            kernel = weights[0][..., in_index, :][..., out_index]
            weights = [kernel] + [w[out_index] for w in weights[1:]]
        elif kind in PER_CHANNEL_WEIGHTS:
            index = kept(analysis.spaces[name])
            weights = [w[..., index, :] if kind == "DepthwiseConv2D" and w.ndim == 4
                       else w[..., index] for w in weights]
        layer.set_weights(weights)
    return new, sizes
