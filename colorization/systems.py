"""The registry of colorization systems: every network and output space, and the
one place that resolves a config, or a saved model, to them.

    network     outputs (first: default)          module
    iizuka      ab, ab_bins                       iizuka.py (+ ab_bins.py)
    zhang       ab_bins                           zhang.py
    larsson     hue_chroma_hist, lab_hist         hypercolumn.py (+ histograms.py)
    varga       uv                                hypercolumn.py (+ uv.py)
    lite        ab_bins, ab                       lite.py (+ efficientnet.py)
    lite_hypercolumn  hue_chroma_hist, lab_hist   lite.py (+ efficientnet.py)

Adding a system: its module (an OutputSpace and/or a Network, seam.py), its line
below, and a preset in config.py. Every stage asks here (resolve, of_model,
decoded_ab01) instead of branching on a system's name.
"""

from colorization import ab_bins, histograms, hypercolumn, iizuka, lite, uv, zhang

OUTPUTS = {o.name: o for o in (iizuka.AB, ab_bins.AB_BINS, histograms.LAB_HIST,
                               histograms.HUE_CHROMA_HIST, uv.UV_OUTPUT)}
NETWORKS = {n.name: n for n in (iizuka.NETWORK, zhang.NETWORK, hypercolumn.LARSSON,
                                hypercolumn.VARGA, lite.FUSION, lite.HYPERCOLUMN)}


class UnknownModel(ValueError):
    """A model that is not one of the registered systems; str() says why."""


def resolve(cfg):
    """(network, output space) of a config; ValueError for an unknown or
    unsupported pair, naming the choices."""
    network = NETWORKS.get(cfg.model.network)
    if network is None:
        raise ValueError(f"unknown network {cfg.model.network!r} ({', '.join(NETWORKS)})")
    name = cfg.model.output or network.default_output
    output = OUTPUTS.get(name)
    if output is None:
        raise ValueError(f"unknown output {name!r} ({', '.join(OUTPUTS)})")
    if name not in network.outputs:
        raise ValueError(f"{network.title}'s network has no {name!r} output; it takes "
                         f"{' or '.join(network.outputs)}")
    return network, output


def of_model(model):
    """(network, output space) of a built or loaded model, from what it records: its
    name (the network) and its outputs' names (the output space)."""
    name = model.name
    network = next((n for n in NETWORKS.values() if name in n.model_names), None)
    try:
        outputs = model.output if isinstance(model.output, dict) else {}
    except AttributeError:  # a model that was never called has no output yet
        outputs = {}
    output = next((OUTPUTS[k] for k in outputs if k in OUTPUTS), None)
    if network is None:
        known = ", ".join(m for n in NETWORKS.values() for m in n.model_names)
        raise UnknownModel(f"not a colorization model of this project (a model named {name!r}; "
                           f"known: {known})")
    if output is None:
        raise UnknownModel(f"not a colorization model (no colour output: {', '.join(OUTPUTS)})")
    return network, output.bound(model)


def output_of(outputs):
    """The output space whose name is among a model's outputs (a dict or names)."""
    for key in outputs:
        if key in OUTPUTS:
            return OUTPUTS[key]
    raise KeyError(f"no colour output among {sorted(outputs)}")


def decoded_ab01(outputs, temperature=None, gray=None, output=None):
    """A model's outputs (a dict) -> NumPy ab01 ((ab + 128) / 255) at the output's
    resolution: the one decoding used by inference, evaluation and training samples.

    temperature: the annealed mean's T of a classification output (None: its own);
    gray: the network's input L / 100 (n, H, W, 1), which some spaces need;
    output: the space as the model uses it (of_model), where it carries constants
    of its own (a converted model's bins); None: found from the outputs' names."""
    output = output or output_of(outputs)
    return output.decode(outputs[output.name], temperature, gray)


def any_size_model(model, global_size=224, with_global_input=False):
    """The same layers (same weights) wired for inference on any image size.

    with_global_input adds a second input, "global_gray", from which the global
    features are computed instead: the paper's style transfer (colorize one image
    with the global features of another); only a network with global features
    takes it.
    """
    network, output = of_model(model)
    if with_global_input and not network.has_global_features:
        raise ValueError(f"{network.title}'s network has no global features to take from "
                         "another image")
    return network.any_size(model, output, global_size, with_global_input)
