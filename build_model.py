"""The joint global and local colorization network (Iizuka et al. 2016, Table 1).

    python build_model.py --preset paper --summary     # layer table, parameters, GFLOPs

`build_model(cfg)` returns the Keras functional model used for training: a
224 x 224 L input whose low-level features are computed once and shared by the
global and the mid-level networks. `any_size_model(model)` wires the same layers
for inference on images of any size: the local path runs at the image's own size
(zero-padded to a multiple of 8 and cropped back), the global path sees the image
resized to 224 x 224. Both map L / 100 in [0, 1] to
  "ab":    (ab + 128) / 255 at half resolution, sigmoid, float32
  "scene": class probabilities (only when the config has classes), float32

With `cfg.model.head == "classification"` the last layer predicts logits over
the quantized ab bins instead ("ab_bins", Zhang et al.'s output; ab_bins.py),
and `cfg.model.arch == "zhang"` builds Zhang et al.'s own network
(zhang_model.py, output "ab_bins" at quarter resolution); "larsson" and "varga"
build the VGG-16 hypercolumn networks of Larsson et al. and Varga & Szirányi
(hypercolumn_model.py). `any_size_model` and `--summary` handle every combination.

Width is scaled by `cfg.model.width` (the demo preset uses 1/8); the paper preset
is the full network. Mixed precision: call `set_precision(policy)` before
building; the two outputs are computed in float32 whatever the policy, because
their losses need the precision.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from colorization.layers import CropToHalfOf, Fusion, PadToMultiple
from config import PRESETS, get_config

# (filters, stride) of each network, from Table 1 of the paper.
LOW_LEVEL = [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1)]
MID_LEVEL = [(512, 1), (256, 1)]
GLOBAL_CONV = [(512, 2), (512, 1), (512, 2), (512, 1)]
GLOBAL_FC = [1024, 512, 256]
FUSION = 256
COLORIZATION = [("conv", 128), ("up", None), ("conv", 64), ("conv", 64), ("up", None),
                ("conv", 32)]
CLASS_HIDDEN = 256
# Torch's batch-norm momentum of 0.1 (the reference implementation's framework),
# i.e. Keras's 0.9: the moving statistics follow the weights within tens of steps.
BN_MOMENTUM = 0.9


def set_precision(policy):
    """Sets the global Keras dtype policy; must run before the model is built."""
    keras.mixed_precision.set_global_policy(policy)


class _Layers:
    """Creates each named layer once (fresh build) or fetches it (from a built model)."""

    def __init__(self, width=1.0, model=None):
        self.width, self.model, self.cache = width, model, {}

    def ch(self, n):
        return max(1, round(n * self.width))

    def get(self, name, factory):
        if self.model is not None:
            return self.model.get_layer(name)
        if name not in self.cache:
            self.cache[name] = factory()
        return self.cache[name]

    def conv_bn_relu(self, x, name, filters, stride=1):
        conv = self.get(name, lambda: keras.layers.Conv2D(
            self.ch(filters), 3, strides=stride, padding="same", name=name))
        bn = self.get(name + "_bn", lambda: keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, name=name + "_bn"))
        relu = self.get(name + "_relu", lambda: keras.layers.ReLU(name=name + "_relu"))
        return relu(bn(conv(x)))

    def dense_bn_relu(self, x, name, units):
        dense = self.get(name, lambda: keras.layers.Dense(self.ch(units), name=name))
        bn = self.get(name + "_bn", lambda: keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, name=name + "_bn"))
        relu = self.get(name + "_relu", lambda: keras.layers.ReLU(name=name + "_relu"))
        return relu(bn(dense(x)))


def _low_level(L, x):
    for i, (filters, stride) in enumerate(LOW_LEVEL, 1):
        x = L.conv_bn_relu(x, f"low{i}", filters, stride)
    return x


def _global_features(L, low):
    """(256-d global features, 512-d FC output that the class head reads)."""
    x = low
    for i, (filters, stride) in enumerate(GLOBAL_CONV, 1):
        x = L.conv_bn_relu(x, f"global{i}", filters, stride)
    x = L.get("global_flatten", lambda: keras.layers.Flatten(name="global_flatten"))(x)
    fc = {}
    for i, units in enumerate(GLOBAL_FC, 1):
        x = L.dense_bn_relu(x, f"global_fc{i}", units)
        fc[units] = x
    return fc[256], fc[512]


def _local_to_ab(L, low, global_features, num_bins=0):
    x = low
    for i, (filters, _) in enumerate(MID_LEVEL, 1):
        x = L.conv_bn_relu(x, f"mid{i}", filters)
    x = L.get("fusion", lambda: Fusion(L.ch(FUSION), name="fusion"))([x, global_features])
    x = L.get("fusion_bn", lambda: keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, name="fusion_bn"))(x)
    x = L.get("fusion_relu", lambda: keras.layers.ReLU(name="fusion_relu"))(x)
    n_up = n_conv = 0
    for kind, filters in COLORIZATION:
        if kind == "up":
            n_up += 1
            x = L.get(f"upsample{n_up}", lambda n=n_up: keras.layers.UpSampling2D(
                2, interpolation="nearest", name=f"upsample{n}"))(x)
        else:
            n_conv += 1
            x = L.conv_bn_relu(x, f"color{n_conv}", filters)
    # float32 output: the sigmoid and the MSE (or the softmax and the cross-entropy)
    # need the precision under mixed policies.
    if num_bins:
        return L.get("ab_bins", lambda: keras.layers.Conv2D(
            num_bins, 3, padding="same", dtype="float32", name="ab_bins"))(x)
    out = L.get("ab", lambda: keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid",
                                                   dtype="float32", name="ab"))
    return out(x)


def _colour_key(num_bins):
    return "ab_bins" if num_bins else "ab"


ARCHES = ("iizuka", "zhang", "larsson", "varga")
ARCH_NAMES = {"iizuka": "Iizuka et al. 2016", "zhang": "Zhang et al. 2016",
              "larsson": "Larsson et al. 2016", "varga": "Varga & Szirányi 2016"}


def check_arch(cfg):
    if cfg.model.arch not in ARCHES:
        raise ValueError(f"unknown arch {cfg.model.arch!r} ({', '.join(ARCHES)})")
    if cfg.model.arch == "larsson" and cfg.model.histogram not in ("lab", "hue_chroma"):
        raise ValueError(f"unknown histogram {cfg.model.histogram!r} (lab or hue_chroma)")


def num_bins_for(cfg):
    """Q when the config asks for the classification head, else 0."""
    check_arch(cfg)
    if cfg.model.arch in ("larsson", "varga"):
        return 0  # their own outputs (colour_key)
    if cfg.model.head not in ("regression", "classification"):
        raise ValueError(f"unknown head {cfg.model.head!r} (regression or classification)")
    if cfg.model.head == "regression":
        if cfg.model.arch == "zhang":
            raise ValueError("Zhang et al.'s network has only the classification head")
        return 0
    from colorization.ab_bins import gamut_bins

    return len(gamut_bins())


def colour_key(cfg):
    """The name of the model's colour output for this config (decoding.py lists them)."""
    if cfg.model.arch == "larsson":
        from colorization import histograms

        check_arch(cfg)
        return histograms.MODES[cfg.model.histogram]
    if cfg.model.arch == "varga":
        return "uv"
    return _colour_key(num_bins_for(cfg))


def output_stride(cfg):
    """Input size / colour output size: 2 for the Iizuka network, 4 for Zhang's and
    Larsson's, 1 for Varga's."""
    if cfg.model.arch == "zhang":
        from colorization import zhang as zhang_model

        return zhang_model.OUTPUT_STRIDE
    if cfg.model.arch in ("larsson", "varga"):
        from colorization import hypercolumn as hypercolumn_model

        return hypercolumn_model.OUTPUT_STRIDE[cfg.model.arch]
    return 2


def model_num_bins(model):
    """Q of a built model's classification head, 0 for a regression head."""
    return int(model.output["ab_bins"].shape[-1]) if "ab_bins" in model.output else 0


def model_arch(model):
    """Which network a built (or loaded) model is: one of ARCHES."""
    names = {layer.name for layer in model.layers}
    if "fusion" in names:
        return "iizuka"
    if "conv8_1" in names:
        return "zhang"
    if "uv" in model.output:
        return "varga"
    return "larsson"


def has_global_features(model):
    """Only Iizuka et al.'s network has a global path (style transfer, ablation)."""
    return model_arch(model) == "iizuka"


def _histogram_bins():
    from colorization import histograms

    return histograms.BINS


def _class_head(L, fc512, num_classes):
    x = L.dense_bn_relu(fc512, "class_fc1", CLASS_HIDDEN)
    return L.get("scene", lambda: keras.layers.Dense(num_classes, activation="softmax",
                                                     dtype="float32", name="scene"))(x)


def _outputs(L, ab, fc512, num_classes, num_bins=0):
    outputs = {_colour_key(num_bins): ab}
    if num_classes:
        outputs["scene"] = _class_head(L, fc512, num_classes)
    return outputs


def build_model(cfg, input_size=224):
    """The training model: input_size x input_size L (224: low-level features shared)."""
    num_bins = num_bins_for(cfg)
    if cfg.model.arch == "zhang":
        from colorization import zhang as zhang_model

        return zhang_model.build(_Layers(cfg.model.width), num_bins, input_size)
    if cfg.model.arch in ("larsson", "varga"):
        from colorization import hypercolumn as hypercolumn_model

        key = colour_key(cfg)
        units = 2 if key == "uv" else 2 * _histogram_bins()
        # The VGG-16 weights are loaded by the caller (model_train.py) on a fresh run.
        return hypercolumn_model.build(_Layers(cfg.model.width), cfg.model.arch, key, units,
                                       input_size)
    num_classes = cfg.model.num_classes
    L = _Layers(cfg.model.width)
    gray = keras.Input((input_size, input_size, 1), name="gray")
    low = _low_level(L, gray)
    if input_size == cfg.model.global_size:
        global_low = low  # the paper's shared low-level features: computed once
    else:
        resized = keras.layers.Resizing(cfg.model.global_size, cfg.model.global_size,
                                        antialias=True, name="global_resize")(gray)
        global_low = _low_level(L, resized)
    global_features, fc512 = _global_features(L, global_low)
    ab = _local_to_ab(L, low, global_features, num_bins)
    return keras.Model(gray, _outputs(L, ab, fc512, num_classes, num_bins), name="iizuka2016")


def any_size_model(model, global_size=224, with_global_input=False):
    """The same layers (same weights) wired for inference on any image size.

    with_global_input adds a second input, "global_gray", from which the global
    features are computed instead: the paper's style transfer (colorize one image
    with the global features of another). Zhang et al.'s network has no global
    path, so it only takes with_global_input=False.
    """
    L = _Layers(model=model)
    num_bins = model_num_bins(model)
    arch = model_arch(model)
    if arch != "iizuka" and with_global_input:
        raise ValueError(f"{ARCH_NAMES[arch]}'s network has no global features to take from "
                         "another image")
    if arch == "zhang":
        from colorization import zhang as zhang_model

        return zhang_model.build(L, num_bins, input_size=None)
    if arch in ("larsson", "varga"):
        from colorization import hypercolumn as hypercolumn_model
        from colorization.decoding import colour_key as output_key

        key = output_key(model.output)
        return hypercolumn_model.build(L, arch, key, int(model.output[key].shape[-1]),
                                       input_size=None)
    gray = keras.Input((None, None, 1), name="gray")
    source = keras.Input((None, None, 1), name="global_gray") if with_global_input else gray
    resize = keras.layers.Resizing(global_size, global_size, antialias=True,
                                   name="global_resize")
    global_features, fc512 = _global_features(L, _low_level(L, resize(source)))
    padded = PadToMultiple(8, name="pad_to_8")(gray)
    ab = _local_to_ab(L, _low_level(L, padded), global_features, num_bins)
    ab = CropToHalfOf(name="crop_to_half")([ab, gray])
    num_classes = model.output["scene"].shape[-1] if "scene" in model.output else 0
    inputs = [gray, source] if with_global_input else gray
    return keras.Model(inputs, _outputs(L, ab, fc512, num_classes, num_bins),
                       name="iizuka2016_any_size")


def global_and_local_models(model):
    """The trained model split at the fusion: (encoder: gray -> 256-d global
    features, decoder: [gray, global features] -> outputs), same layers and
    weights. evaluate.py --ablate-global feeds the decoder a fixed vector."""
    L = _Layers(model=model)
    size = model.input_shape[1]
    gray = keras.Input((size, size, 1), name="gray")
    global_features, _ = _global_features(L, _low_level(L, gray))
    encoder = keras.Model(gray, global_features, name="global_encoder")
    gray2 = keras.Input((size, size, 1), name="gray")
    given = keras.Input((global_features.shape[-1],), name="global_features")
    num_bins = model_num_bins(model)
    ab = _local_to_ab(L, _low_level(L, gray2), given, num_bins)
    decoder = keras.Model([gray2, given], {_colour_key(num_bins): ab}, name="local_decoder")
    return encoder, decoder


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
        params = sum(int(w.shape.num_elements() if hasattr(w.shape, "num_elements")
                         else _numel(w.shape)) for w in layer.weights)
        flops = 0
        for node in _nodes_in(model, layer):
            out_shape = tuple(node.outputs[0].shape)
            if isinstance(layer, keras.layers.Conv2DTranspose):  # per input pixel
                k = layer.kernel.shape
                stride = layer.strides[0] * layer.strides[1]
                flops += 2 * k[0] * k[1] * k[2] * k[3] * out_shape[1] * out_shape[2] // stride
            elif isinstance(layer, keras.layers.Conv2D):
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
    total = sum(r[2] for r in rows)
    head = sum(r[2] for r in rows if r[0] in ("class_fc1", "scene"))
    gflops = sum(r[3] for r in rows) / 1e9
    bn = count_bn_params(model)
    colour = (f"classification head over {model_num_bins(model)} ab bins"
              if model_num_bins(model) else "regression head (ab)")
    arch = model_arch(model)
    if arch in ("larsson", "varga"):
        from colorization.decoding import colour_key as output_key

        key = output_key(model.output)
        colour = {"lab_hist": "Lab marginal histograms (2 x 32 bins)",
                  "hue_chroma_hist": "hue and chroma histograms (2 x 32 bins)",
                  "uv": "U and V of YUV at full resolution"}[key]
    if arch != "iizuka":
        return "\n".join(lines + [
            "", (f"preset {cfg.preset} ({ARCH_NAMES[arch]}), width {cfg.model.width:g}, "
                 f"{colour}"),
            (f"weights and biases: {total:,} ({total / 1e6:.2f}M); batch-norm parameters "
             f"{bn:,} more"),
            f"forward pass: {gflops:.2f} GFLOP per 224x224 image"])
    # The paper counts the fusion as a 1x1 convolution over the concatenation.
    fusion = model.get_layer("fusion")
    pixels = fusion.output.shape[1] * fusion.output.shape[2]
    concat_gflops = gflops + 2 * fusion.global_kernel.shape[0] * fusion.units * pixels / 1e9
    lines += [
        "",
        (f"preset {cfg.preset}, width {cfg.model.width:g}, {cfg.model.num_classes} classes, "
         f"{colour}"),
        (f"weights and biases: {total:,} ({total / 1e6:.2f}M); without the class head "
         f"{(total - head) / 1e6:.2f}M; batch-norm parameters {bn:,} more"),
        (f"forward pass: {gflops:.2f} GFLOP per 224x224 image (low-level features shared); "
         f"{concat_gflops:.2f} counting the fusion as a 1x1 convolution of the concatenation"),
    ]
    if cfg.model.width == 1.0 and cfg.model.num_classes == 205 and not model_num_bins(model):
        lines.append("paper: 42.35M weights and biases (42.17M without the class head), "
                     "about 17.2 GFLOP per 224x224 forward pass")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--classes", type=int, help="number of scene classes (0: no class head)")
    p.add_argument("--width", type=float, help="channel width multiplier")
    p.add_argument("--head", choices=["regression", "classification"],
                   help="ab output: regression (Iizuka) or logits over the ab bins (Zhang)")
    p.add_argument("--histogram", choices=["lab", "hue_chroma"],
                   help="Larsson et al.'s output: Lab marginals or hue/chroma")
    p.add_argument("--summary", action="store_true", help="print layers, parameters and GFLOPs")
    args = p.parse_args(argv)
    overrides = {}
    if args.classes is not None:
        overrides["num_classes"] = args.classes
    if args.width is not None:
        overrides["width"] = args.width
    if args.head is not None:
        overrides["head"] = args.head
    if args.histogram is not None:
        overrides["histogram"] = args.histogram
    cfg = get_config(args.preset, model=overrides)
    try:
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
    sys.exit(main())
