"""Builds a colorization network from a config: any system of the registry.

    python build_model.py --preset paper --summary     # layer table, parameters, GFLOPs
    python build_model.py --preset zhang --summary
    python build_model.py --preset demo --output ab_bins --summary

`build_model(cfg)` returns the Keras functional model used for training, for the
network and output space the config names (colorization/systems.py): Iizuka et
al.'s joint global and local network (the paper, colorization/iizuka.py; a
224 x 224 L whose low-level features are computed once and shared by the global
and the mid-level networks), Zhang et al.'s (zhang.py), or the VGG-16 hypercolumns
of Larsson et al. and Varga & Szirányi (hypercolumn.py). `any_size_model(model)`
wires the same layers for inference on images of any size. Every model maps
L / 100 in [0, 1] to its colour output (named after its output space: "ab" is
(ab + 128) / 255 at half resolution) and, for a network with a scene head and a
config with classes, "scene" class probabilities; both float32 whatever the policy.

Width is scaled by `cfg.model.width` (the demo preset uses 1/8); the paper preset
is the full network. Mixed precision: call `set_precision(policy)` before
building.
"""

import argparse
import sys

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import keras

from colorization import systems
from colorization.layers import Fusion
from colorization.systems import any_size_model  # noqa: F401 (re-exported for its users)
from config import add_model_flags, get_config, model_overrides


def set_precision(policy):
    """Sets the global Keras dtype policy; must run before the model is built."""
    keras.mixed_precision.set_global_policy(policy)


def build_model(cfg, input_size=224):
    """The training model: input_size x input_size L (224: low-level features shared)."""
    network, output = systems.resolve(cfg)
    network.check(cfg)
    return network.build(cfg, output, input_size)


def global_and_local_models(model):
    """The trained model split where its global features join (evaluate.py
    --ablate-global): (encoder: gray -> global features, decoder: [gray, global
    features] -> colour), same layers and weights."""
    network, output = systems.of_model(model)
    if not network.has_global_features:
        raise ValueError(f"{network.title}'s network has no global features")
    return network.split_at_fusion(model, output)


# ---------------------------------------------------------------- size and FLOPs


def layer_table(model):
    """[(name, output shape, weights+biases, FLOPs per image)] for a fixed-size model.

    FLOPs count multiply-adds as 2 in convolutions, dense and fusion layers; a
    layer called twice (the unshared low-level path) counts twice.
    """
    rows = []
    for layer in model.layers:
        if not layer.weights or isinstance(layer, keras.layers.BatchNormalization):
            continue
        params = sum(_numel(w.shape) for w in layer.weights)
        flops = 0
        for node in _nodes_in(model, layer):
            out_shape = tuple(node.outputs[0].shape)
            if isinstance(layer, keras.layers.Conv2DTranspose):  # per input pixel
                k = layer.kernel.shape
                stride = layer.strides[0] * layer.strides[1]
                flops += 2 * k[0] * k[1] * k[2] * k[3] * out_shape[1] * out_shape[2] // stride
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                # a depthwise kernel is (k, k, C, multiplier): the same product
                k = layer.kernel.shape
                flops += 2 * k[0] * k[1] * k[2] * k[3] * out_shape[1] * out_shape[2]
            elif isinstance(layer, keras.layers.Dense):
                flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
            elif isinstance(layer, Fusion):
                pixels = out_shape[1] * out_shape[2]
                flops += 2 * layer.mid_kernel.shape[0] * layer.units * pixels
                flops += 2 * layer.global_kernel.shape[0] * layer.units
        rows.append((layer.name, out_shape, params, flops))
    return rows


def _nodes_in(model, layer):
    """The calls of `layer` that belong to `model` (a layer reused by an any-size
    model has more). Keras keys a functional model's nodes as "<id>_ib-<index>"."""
    return [node for i, node in enumerate(layer._inbound_nodes)
            if f"{id(layer)}_ib-{i}" in model._nodes]


def _numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def count_bn_params(model):
    return sum(_numel(w.shape) for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights)


def summary_text(cfg, model):
    rows = layer_table(model)
    lines = [f"{'layer':<14} {'output':<22} {'weights+biases':>15} {'GFLOP':>8}"]
    for name, shape, params, flops in rows:
        lines.append(f"{name:<14} {shape[1:]!s:<22} {params:>15,} {flops / 1e9:>8.3f}")
    network, output = systems.of_model(model)
    closing = network.summary_lines(cfg, model, output, rows)
    closing[1] += f"; batch-norm parameters {count_bn_params(model):,} more"
    return "\n".join([*lines, "", *closing])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quiet.add_verbose_flag(p)
    add_model_flags(p)
    p.add_argument("--classes", type=int, help="number of scene classes (0: no class head)")
    p.add_argument("--summary", action="store_true", help="print layers, parameters and GFLOPs")
    args = p.parse_args(argv)
    try:
        overrides = model_overrides(args)
        if args.classes is not None:
            if args.classes < 0:
                raise ValueError("--classes must be 0 or more")
            overrides["num_classes"] = args.classes
        cfg = get_config(args.preset, model=overrides)
        model = build_model(cfg)
    except ValueError as e:
        print(f"build_model.py: error: {e}", file=sys.stderr)
        return 2
    if args.summary:
        print(summary_text(cfg, model))
    else:
        print(f"{model.name}: {model.count_params():,} parameters (use --summary for the table)")
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "build_model.py",
                            "nothing was written"))
