"""Iizuka et al. 2016's Torch 7 release (colornet.t7, colornet_imagenet.t7) converted
into this project's Iizuka network.

Facts of the release this conversion follows (the authors' colorize.lua and
stylize.lua, and the paper's Table 1):
- the file is a table {model = an nngraph gModule, mean = a number};
- the model reads {global, local}: the image's luma (Torch's image.rgb2y, values
  in [0, 1]) minus the mean, rescaled to 224 x 224 for the global path and to the
  nearest multiple of 8 for the local path; stylize.lua takes the global input
  from another image (this project's --reference);
- the 256-d global vector is broadcast over the fusion's grid by two nn.Replicate
  (nfeatures set to H/8 and W/8 at run time) and joined with the mid-level
  features (nn.JoinTable) before a 1x1 convolution;
- the output is a sigmoid o at half the local input's size, ab = (2 o - 1) * 100,
  joined with the photo's own lightness.

The graph is mapped by its structure, not by node numbers: the join has two
inputs, the one whose chain holds the nn.Replicate is the global path, the other
the local one; the chain after the join is the colorization network; a branch off
the global path ending in a softmax, if any, is the scene head. Within each chain
the modules are matched in order by kind and weight shape, so the strides tell the
global network's 512 -> 512 convolutions from the mid-level ones. Batch norm may
follow any convolution or linear layer (an absent one maps to the identity), in
the current layout (running_var) or the older one (running_std = 1 / sqrt(var +
eps)). The first linear layer reads Torch's (C, H, W) flattening, reordered here
to Keras's (H, W, C).
"""

import numpy as np

from colorization import torch7_format as t7
from colorization.published import built_in_float32, set_weights
from colorization.torch7_format import Torch7Error

CONVS = ("nn.SpatialConvolution", "nn.SpatialConvolutionMM", "cudnn.SpatialConvolution")
BATCH_NORMS = ("nn.SpatialBatchNormalization", "nn.BatchNormalization",
               "cudnn.SpatialBatchNormalization", "cudnn.BatchNormalization")
ACTIVATIONS = {"nn.ReLU": "relu", "cudnn.ReLU": "relu", "nn.Sigmoid": "sigmoid",
               "cudnn.Sigmoid": "sigmoid", "nn.SoftMax": "softmax", "nn.LogSoftMax": "softmax",
               "cudnn.SoftMax": "softmax", "cudnn.LogSoftMax": "softmax"}
MARKERS = {"nn.View": "flatten", "nn.Reshape": "flatten", "nn.Replicate": "replicate",
           "nn.SpatialUpSamplingNearest": "up"}
PASS_THROUGH = ("nn.Identity", "nn.Dropout", "nn.SpatialDropout", "nn.JoinTable", "nn.Copy")


def _array(module, name):
    value = t7.fields(module).get(name)
    return value if isinstance(value, np.ndarray) and value.size else None


def _units(modules, where):
    """Modules -> [("conv"|"linear", {module, bn, act, ...}) or (marker, module)]."""
    out = []
    for m in modules:
        name = t7.class_name(m) or type(m).__name__
        f = t7.fields(m)
        if name in CONVS or name == "nn.Linear":
            w = _array(m, "weight")
            if w is None:
                raise Torch7Error(f"{where}: a {name} without weights")
            if name == "nn.Linear":
                unit = {"n_out": w.shape[0], "n_in": int(np.prod(w.shape[1:])), "stride": 1,
                        "k": 1, "pad": 0}
            else:
                k = int(f.get("kW") or 0)
                unit = {"n_out": int(f.get("nOutputPlane") or w.shape[0]),
                        "n_in": int(f.get("nInputPlane") or 0), "k": k,
                        "stride": int(f.get("dW") or 1), "pad": int(f.get("padW") or 0)}
                if (k != int(f.get("kH") or 0) or unit["stride"] != int(f.get("dH") or 1)
                        or unit["pad"] != int(f.get("padH") or 0)):
                    raise Torch7Error(f"{where}: a convolution that is not square "
                                      f"(kW {k}, kH {f.get('kH')})")
                if w.size != unit["n_out"] * unit["n_in"] * k * k:
                    raise Torch7Error(f"{where}: a convolution's weights ({w.shape}) do not fit "
                                      f"{unit['n_in']} -> {unit['n_out']}, {k} x {k}")
            unit.update(module=m, bn=None, act=None, weight=w, bias=_array(m, "bias"))
            out.append(("linear" if name == "nn.Linear" else "conv", unit))
        elif name in BATCH_NORMS:
            if not out or out[-1][0] not in ("conv", "linear") or out[-1][1]["bn"] is not None \
                    or out[-1][1]["act"] is not None:
                raise Torch7Error(f"{where}: a batch norm that does not follow a convolution "
                                  "or linear layer")
            out[-1][1]["bn"] = m
        elif name in ACTIVATIONS:
            if not out or out[-1][0] not in ("conv", "linear") or out[-1][1]["act"]:
                raise Torch7Error(f"{where}: a {name} that does not follow a layer")
            out[-1][1]["act"] = ACTIVATIONS[name]
        elif name in MARKERS:
            out.append((MARKERS[name], m))
        elif name not in PASS_THROUGH:
            raise Torch7Error(f"{where}: a {name}, which Iizuka et al.'s network does not have")
    return out


def _chain_back(graph, start):
    """Node indices from the graph's input to `start` (each with one parent)."""
    chain, node = [], start
    while True:
        chain.insert(0, node)
        parents = graph.parents[node]
        if not parents:
            return chain
        if len(parents) > 1:
            raise Torch7Error("a node on the way to the fusion joins several inputs")
        node = parents[0]


def _modules(graph, nodes):
    out = []
    for i in nodes:
        out += t7.leaves(graph.module[i])
    return out


def _expect(units, kinds, where):
    """Takes the expected sequence off the front of units: kinds is a list of
    ("conv", n_in, n_out, stride, k, act) / ("linear", n_in, n_out, act) / marker."""
    taken = []
    for want in kinds:
        if not units:
            raise Torch7Error(f"{where}: the network ends before its {want[0]} layers do "
                              f"(not Iizuka et al.'s network, or another width)")
        kind, unit = units.pop(0)
        if isinstance(want, str):
            if kind != want:
                raise Torch7Error(f"{where}: found a {kind} where the network has a {want}")
            continue
        if kind != want[0]:
            raise Torch7Error(f"{where}: found a {kind} where the network has a {want[0]}")
        got = ((unit["n_in"], unit["n_out"], unit["stride"], unit["k"], unit["act"])
               if kind == "conv" else (unit["n_in"], unit["n_out"], unit["act"]))
        if got != tuple(want[1:]):
            raise Torch7Error(f"{where}: a {kind} {got[0]} -> {got[1]} "
                              + (f"(stride {got[2]}, {got[3]} x {got[3]}, {got[4]})"
                                 if kind == "conv" else f"({got[2]})")
                              + f" where the network has {want[1]} -> {want[2]}")
        if kind == "conv" and unit["pad"] != unit["k"] // 2:
            raise Torch7Error(f"{where}: a {unit['k']} x {unit['k']} convolution padded by "
                              f"{unit['pad']}; the network pads by {unit['k'] // 2}")
        taken.append(unit)
    return taken


def _structure(graph, width):
    """{part: [units]} of the release's graph at `width`, checked."""
    join, chains, units, g = _fusion_inputs(graph)
    loc = 1 - g
    want, c = _paper_units(width), _scaled(width)
    glob = list(units[g])
    parts = {"low_global": _expect(glob, want["low"], "the global path's low-level network"),
             "global": _expect(glob, want["global"], "the global network")}
    _expect(glob, ["flatten"], "the global network")
    parts["fc"] = _expect(glob, want["fc"], "the global network's fully connected layers")
    _expect(glob, ["replicate", "replicate"], "the global features' broadcast")
    if glob:
        raise Torch7Error(f"the global path goes on after its broadcast ({glob[0][0]})")
    local = list(units[loc])
    parts["low"] = _expect(local, want["low"], "the local path's low-level network")
    parts["mid"] = _expect(local, want["mid"], "the mid-level network")
    if local:
        raise Torch7Error(f"the mid-level network goes on ({local[0][0]})")
    after = _chain_forward(graph, join)
    colour = _units(_modules(graph, after), "the colorization network")
    parts["colour"] = _expect(colour, want["colour"], "the colorization network")
    if colour:
        raise Torch7Error(f"the colorization network goes on after its sigmoid "
                          f"({colour[0][0]})")
    parts["class"] = _scene_head(graph, chains[g], set(chains[loc]) | set(after) | {join}, c)
    parts["global_first"] = g == 0
    return parts


def _scaled(width):
    """The paper's channel count n at `width` (at least 1)."""
    return lambda n: max(1, round(n * width))


def _fusion_inputs(graph):
    """The fusion's nn.JoinTable and what it joins: (its node, the chains of nodes back
    from each of its two inputs, their units, the index of the global one)."""
    joins = [i for i, m in enumerate(graph.module) if t7.leaves(m)
             and t7.class_name(t7.leaves(m)[0]) == "nn.JoinTable"]
    if len(joins) != 1 or len(graph.parents[joins[0]]) != 2:
        raise Torch7Error("not Iizuka et al.'s network: no fusion (one nn.JoinTable of the "
                          "global and the mid-level features)")
    join = joins[0]
    chains = [_chain_back(graph, p) for p in graph.parents[join]]
    units = [_units(_modules(graph, ch), "the fusion's input") for ch in chains]
    is_global = ["replicate" in [k for k, _ in u] for u in units]
    if sorted(is_global) != [False, True]:
        raise Torch7Error("not Iizuka et al.'s network: the fusion does not join one "
                          "broadcast (nn.Replicate) global vector and one feature map")
    return join, chains, units, 1 if is_global[1] else 0


def _paper_units(width):
    """The units each part of Iizuka et al.'s network has at `width`, as _units lists
    them: {"low", "global", "fc", "mid", "colour": [unit]}."""
    from colorization import iizuka

    c = _scaled(width)

    def convs(layers, n_in):
        out = []
        for filters, stride in layers:
            out.append(("conv", n_in, c(filters), stride, 3, "relu"))
            n_in = c(filters)
        return out, n_in

    low, n_in = convs(iizuka.LOW_LEVEL, 1)
    gconv, n_in = convs(iizuka.GLOBAL_CONV, n_in)
    fcs, n_fc = [], n_in * 7 * 7
    for units_ in iizuka.GLOBAL_FC:
        fcs.append(("linear", n_fc, c(units_), "relu"))
        n_fc = c(units_)
    mid, _ = convs([(f, 1) for f, _ in iizuka.MID_LEVEL], c(512))
    colour, n_in = [("conv", 2 * c(iizuka.FUSION), c(iizuka.FUSION), 1, 1, "relu")], \
        c(iizuka.FUSION)
    for kind, filters in iizuka.COLORIZATION:
        if kind == "up":
            colour.append("up")
        else:
            colour.append(("conv", n_in, c(filters), 1, 3, "relu"))
            n_in = c(filters)
    colour.append(("conv", n_in, 2, 1, 3, "sigmoid"))
    return {"low": low, "global": gconv, "fc": fcs, "mid": mid, "colour": colour}


def _chain_forward(graph, node):
    """The nodes from `node` on to the graph's end, refused where the way branches."""
    after = []
    while True:
        after.append(node)
        kids = graph.children[node]
        if not kids:
            return after
        if len(kids) > 1:
            raise Torch7Error("the colorization network branches")
        node = kids[0]


def _scene_head(graph, global_chain, others, c):
    """The units of a branch off the global path ending in a softmax, or []."""
    used = set(global_chain) | others
    for i in range(len(graph.nodes)):
        if i in used or not graph.module[i] or not t7.leaves(graph.module[i]):
            continue
        back = _chain_back(graph, i)
        shared = [n for n in back if n in global_chain]
        branch = [n for n in back if n not in used]
        if not shared or not branch:
            continue
        head = _units(_modules(graph, branch), "the scene head")
        if not head or head[-1][0] != "linear" or head[-1][1]["act"] != "softmax":
            continue
        classes = head[-1][1]["n_out"]
        return _expect(head, [("linear", c(512), c(256), "relu"),
                              ("linear", c(256), classes, "softmax")], "the scene head")
    return []


def _bn_values(unit, shape, epsilon):
    """[gamma, beta, mean, variance] for our batch norm (epsilon) after a unit."""
    bn = unit["bn"]
    n = shape[0]
    if bn is None:  # no batch norm in the release here: the identity
        return [np.ones(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32),
                np.full(n, 1.0 - epsilon, np.float32)]
    f = t7.fields(bn)
    eps = float(f.get("eps") or 1e-5)
    mean = _array(bn, "running_mean")
    var = _array(bn, "running_var")
    if var is None:
        std = _array(bn, "running_std")  # the older layout: 1 / sqrt(var + eps)
        if std is None or mean is None:
            raise Torch7Error("a batch norm without running statistics")
        var = 1.0 / np.square(std.astype(np.float64)) - eps
    if mean is None or mean.size != n or var.size != n:
        raise Torch7Error(f"a batch norm of {mean.size if mean is not None else 0} channels "
                          f"after a layer of {n}")
    gamma = _array(bn, "weight")
    beta = _array(bn, "bias")
    gamma = np.ones(n) if gamma is None else gamma
    beta = np.zeros(n) if beta is None else beta
    # Keras divides by sqrt(var + its epsilon): the file's own epsilon folded in.
    var = np.maximum(var.astype(np.float64) + eps - epsilon, 0.0)
    return [np.asarray(v, np.float32).reshape(n) for v in (gamma, beta, mean, var)]


def _conv_kernel(unit):
    w = unit["weight"].reshape(unit["n_out"], unit["n_in"], unit["k"], unit["k"])
    return w.transpose(2, 3, 1, 0)


def _bias(unit):
    b = unit["bias"]
    return np.zeros(unit["n_out"], np.float32) if b is None else b.reshape(-1)


def _same_low_level(a, b):
    for u, v in zip(a, b, strict=True):
        for key in ("weight", "bias"):
            if (u[key] is None) != (v[key] is None) or (
                    u[key] is not None and not np.array_equal(u[key], v[key])):
                return False
        for name in ("running_mean", "running_var", "running_std", "weight", "bias"):
            x = _array(u["bn"], name) if u["bn"] is not None else None
            y = _array(v["bn"], name) if v["bn"] is not None else None
            if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
                return False
    return True


def iizuka_torch_model(top, class_names=()):
    """A Keras model (iizuka.build_torch_release) with the weights of a read
    colornet.t7; class_names: the scene head's (as many as it has classes);
    returns (model, info)."""
    from colorization import iizuka

    if not isinstance(top, dict) or "model" not in top:
        raise Torch7Error("a Torch 7 file, but not Iizuka et al.'s release (a table of 'model' "
                          "and 'mean')")
    mean = _release_mean(top)
    graph = t7.Graph(top["model"])
    width = _release_width(graph)
    parts = _structure(graph, width)
    if not _same_low_level(parts["low"], parts["low_global"]):
        raise Torch7Error("the global and local paths' low-level networks have different "
                          "weights; Iizuka et al.'s network shares them")
    num_classes = parts["class"][-1]["n_out"] if parts["class"] else 0
    if class_names and len(class_names) != num_classes:
        raise Torch7Error(f"{len(class_names)} class names given; the release's scene head "
                          f"has {num_classes} classes")
    model = built_in_float32(lambda: iizuka.build_torch_release(width, num_classes, mean,
                                                                class_names))
    _put_release_weights(model, parts, width)
    return model, {"width": width, "mean": mean, "classes": num_classes}


def _release_mean(top):
    """The release's 'mean' (the L it subtracts), a finite number."""
    mean = top.get("mean")
    if isinstance(mean, np.ndarray) and mean.size == 1:
        mean = float(mean.reshape(-1)[0])
    if not isinstance(mean, (int, float)) or not np.isfinite(mean):
        raise Torch7Error("the release's 'mean' is not a number")
    return float(mean)


def _release_width(graph):
    """The network's width against the paper's: its first convolution's filters / 64."""
    first = next((m for m in _modules(graph, range(len(graph.nodes)))
                  if t7.class_name(m) in CONVS), None)
    weight = _array(first, "weight") if first is not None else None
    if weight is None:
        raise Torch7Error("not Iizuka et al.'s network (no convolution)")
    return weight.shape[0] / 64.0


def _put_release_weights(model, parts, width):
    """Each unit of _structure's parts into its layer of build_torch_release's model:
    Torch's (out, in, kh, kw) kernels, its (C, 7, 7) flattening and the fusion's
    concatenation order turned into Keras's."""
    from colorization import iizuka

    eps = iizuka.TORCH_BN_EPSILON

    def put(name, values):
        set_weights(model, name, values, width, name, Torch7Error)

    def conv_bn(name, unit):
        put(name, [_conv_kernel(unit), _bias(unit)])
        put(name + "_bn", _bn_values(unit, (unit["n_out"],), eps))

    def dense_bn(name, unit, kernel=None):
        kernel = unit["weight"].reshape(unit["n_out"], -1).T if kernel is None else kernel
        put(name, [kernel, _bias(unit)])
        put(name + "_bn", _bn_values(unit, (unit["n_out"],), eps))

    for i, unit in enumerate(parts["low"], 1):
        conv_bn(f"low{i}", unit)
    for i, unit in enumerate(parts["global"], 1):
        conv_bn(f"global{i}", unit)
    fc1 = parts["fc"][0]
    channels = fc1["n_in"] // 49
    # Torch flattens (C, 7, 7) channel first; Keras's Flatten reads (7, 7, C).
    kernel = fc1["weight"].reshape(fc1["n_out"], channels, 7, 7).transpose(2, 3, 1, 0)
    dense_bn("global_fc1", fc1, kernel.reshape(49 * channels, fc1["n_out"]))
    for i, unit in enumerate(parts["fc"][1:], 2):
        dense_bn(f"global_fc{i}", unit)
    for i, unit in enumerate(parts["mid"], 1):
        conv_bn(f"mid{i}", unit)
    fusion, *colour, out = parts["colour"]
    w = fusion["weight"].reshape(fusion["n_out"], fusion["n_in"])
    half = fusion["n_in"] // 2
    first_half, second_half = w[:, :half].T, w[:, half:].T
    global_kernel, mid_kernel = ((first_half, second_half) if parts["global_first"]
                                 else (second_half, first_half))
    put("fusion", [mid_kernel, global_kernel, _bias(fusion)])
    put("fusion_bn", _bn_values(fusion, (fusion["n_out"],), eps))
    for i, unit in enumerate(colour, 1):
        conv_bn(f"color{i}", unit)
    put(iizuka.AB.name, [_conv_kernel(out), _bias(out)])
    if parts["class"]:
        dense_bn("class_fc1", parts["class"][0])
        head = parts["class"][1]
        put("scene", [head["weight"].reshape(head["n_out"], -1).T, _bias(head)])
