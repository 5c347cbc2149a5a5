"""Hypercolumn colorization on a VGG-16 backbone: Larsson et al. 2016 and Varga &
Szirányi 2016.

    python build_model.py --preset larsson --summary
    python build_model.py --preset varga --summary

The backbone is VGG-16's convolutional part with keras.applications' layer
names (block1_conv1 ... block5_conv3), reading the grayscale image replicated
to three channels with VGG's own preprocessing (`VGGGrayInput`), so that
ImageNet weights load layer by layer (`load_backbone_weights`).

Larsson et al. (`--preset larsson`): the hypercolumn of conv1_2, conv2_2, conv3_3,
conv4_3 and conv5_3 at 1/4 of the input resolution (finer maps area-averaged,
coarser ones bilinearly upsampled; 1,472 channels at full width), a 1x1
convolution of 1,024 units with ReLU (their h_fc1), and a 1x1 convolution to the
2K logits of two marginal histograms ("lab_hist" or "hue_chroma_hist";
histograms.py). Their fc6/fc7 (as convolutions) are left out: keras.applications'
convolutional VGG-16 has no weights for them, and they are 120M of its 138M
parameters. Larsson et al. sample 128 hypercolumns per image in training; here
the whole 1/4-resolution grid is trained, which is what inference computes.

Varga & Szirányi (`--preset varga`): the VGG-16 layers before the third max-pool
(conv1_2, conv2_2, conv3_3) upsampled to the input's size and concatenated with
the 3-channel input: T, 451 channels at full width. Two convolutions read T: a
3x3 of 128 channels, and a 3x3 of 16 on top of it; their concatenation Q (144
channels, the seed's matrix Q) is mapped by a 1x1 convolution with a sigmoid to
U and V of YUV / 255 ("uv", the output space of uv.py), at the input's full resolution.

Any size: the input is zero-padded to a multiple of 16 (Larsson: conv5_3 is at
1/16) or 4 (Varga) and the output cropped back (model_layers.py).
"""

import sys
import warnings

import keras

from colorization.layers import (
    BilinearUpSampling,
    CropToFractionOf,
    LayerFactory,
    PadToMultiple,
    VGGGrayInput,
)
from colorization.seam import Network

# (block, number of 3x3 convolutions, filters) of VGG-16 (Simonyan & Zisserman).
VGG16_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]
LARSSON_LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3",
                  "block5_conv3"]
LARSSON_STRIDE = 4  # output resolution: 1/4 of the input
LARSSON_HIDDEN = 1024
VARGA_LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3"]
VARGA_CONVS = [128, 16]
PAD = {"larsson": 16, "varga": 4}
OUTPUT_STRIDE = {"larsson": LARSSON_STRIDE, "varga": 1}
MODEL_NAMES = {"larsson": "larsson2016", "varga": "varga2016"}
IMAGENET_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


class WeightsError(ValueError):
    """VGG-16 weights that were asked for cannot be used; str(error) says why."""


def _conv(layers, name, filters, kernel=3, activation="relu", output=False):
    """A convolution scaled by the width (output=True: exactly `filters`, float32,
    since the losses need the precision under mixed policies)."""
    # He initialisation: VGG-16 has no batch normalization, and the demo presets
    # train it from scratch. The output layer starts at zero: uniform histograms
    # and gray U, V, whatever the scale of VGG's activations (hundreds with
    # ImageNet weights; Larsson et al. initialise their head with sigma 1e-4).
    return layers.get(name, lambda: keras.layers.Conv2D(
        filters if output else layers.ch(filters), kernel, padding="same", activation=activation,
        kernel_initializer="zeros" if output else "he_normal",
        dtype="float32" if output else None, name=name))


def vgg16_features(layers, vgg_input, last_block):
    """{layer name: activation} of VGG-16's convolutions up to block `last_block`."""
    x, features = vgg_input, {}
    for block, convs, filters in VGG16_BLOCKS[:last_block]:
        if block > 1:
            x = layers.get(f"block{block - 1}_pool", lambda b=block: keras.layers.MaxPooling2D(
                2, name=f"block{b - 1}_pool"))(x)
        for i in range(1, convs + 1):
            name = f"block{block}_conv{i}"
            x = features[name] = _conv(layers, name, filters)(x)
    return features


def _resample(layers, x, name, stride, target_stride):
    """x at 1/stride of the input's resolution -> 1/target_stride: area average
    when finer, bilinear when coarser (strides are powers of 2)."""
    if stride < target_stride:
        return layers.get(name, lambda: keras.layers.AveragePooling2D(
            target_stride // stride, name=name))(x)
    if stride > target_stride:
        # Made anew (no weights): models saved with UpSampling2D here get the same
        # arithmetic in a form that compiles for any input size.
        return BilinearUpSampling(stride // target_stride, name=name)(x)
    return x


def _layer_stride(name):
    return 2 ** (int(name[len("block")]) - 1)  # blockN is at 1/2^(N-1)


def _larsson_head(layers, features, output):
    parts = [_resample(layers, features[name], f"hyper_{name}", _layer_stride(name),
                       LARSSON_STRIDE) for name in LARSSON_LAYERS]
    hyper = layers.get("hypercolumn", lambda: keras.layers.Concatenate(name="hypercolumn"))(parts)
    hidden = _conv(layers, "h_fc1", LARSSON_HIDDEN, kernel=1)(hyper)
    return _conv(layers, output.name, output.channels(), kernel=1, activation=output.activation,
                 output=True)(hidden)


def _varga_head(layers, vgg_input, features, output):
    parts = [vgg_input] + [_resample(layers, features[name], f"hyper_{name}",
                                     _layer_stride(name), 1) for name in VARGA_LAYERS]
    t = layers.get("hypercolumn", lambda: keras.layers.Concatenate(name="hypercolumn"))(parts)
    a = _conv(layers, "varga_conv1", VARGA_CONVS[0])(t)
    b = _conv(layers, "varga_conv2", VARGA_CONVS[1])(a)
    q = layers.get("varga_q", lambda: keras.layers.Concatenate(name="varga_q"))([a, b])
    return _conv(layers, output.name, output.channels(), kernel=1, activation=output.activation,
                 output=True)(q)


def build(layers, variant, output, input_size=224):
    """The network on an input_size x input_size L (None: any size, padded and
    cropped back). layers: a LayerFactory (fresh layers or those of a model)."""
    if variant not in PAD:
        raise ValueError(f"unknown hypercolumn variant {variant!r} (larsson or varga)")
    gray = keras.Input((input_size, input_size, 1), name="gray")
    pad = PAD[variant]
    padded = input_size is None or input_size % pad
    # Made anew (no weights): a 224 x 224 training model has no padding layer.
    x = PadToMultiple(pad, name="pad_to_multiple")(gray) if padded else gray
    vgg_input = layers.get("vgg_input", lambda: VGGGrayInput(name="vgg_input"))(x)
    if variant == "larsson":
        out = _larsson_head(layers, vgg16_features(layers, vgg_input, 5), output)
    else:
        out = _varga_head(layers, vgg_input, vgg16_features(layers, vgg_input, 3), output)
    if padded:
        out = CropToFractionOf(OUTPUT_STRIDE[variant], name="crop_output")([out, gray])
    suffix = "" if input_size else "_any_size"
    return keras.Model(gray, {output.name: out}, name=MODEL_NAMES[variant] + suffix)


def backbone_layers(model):
    """The names of the model's VGG-16 convolutions."""
    return [layer.name for layer in model.layers
            if layer.name.startswith("block") and "_conv" in layer.name]


def check_weights(weights, full_width):
    """Raises WeightsError when the weights asked for cannot be loaded into the
    network (checked before training starts, and again when loading)."""
    import os

    if weights in (None, "", "none"):
        return
    if not full_width:
        raise WeightsError("pretrained VGG-16 weights need the full-width network (width 1); "
                           "this one is narrowed")
    if weights != "imagenet" and not os.path.isfile(weights):
        raise WeightsError(f"VGG-16 weights file not found: {weights}")


def load_backbone_weights(model, weights, log=None):
    """Loads VGG-16 weights into the model's backbone, in place; returns a line
    saying what was loaded.

    weights: "imagenet" (keras.applications downloads them, or finds them in
    ~/.keras/models), a local file of VGG-16's convolutional weights (Keras's
    IMAGENET_NOTOP_FILE, or any `VGG16(include_top=False).save_weights(...)`),
    or "none" (keep the random initialisation). If "imagenet" cannot be had,
    training goes on from random weights with a warning: the network still
    learns, but without the semantic features the papers build on.
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if weights in (None, "", "none"):
        return "VGG-16 backbone: random initialisation (no pretrained weights asked for)"
    names = backbone_layers(model)
    check_weights(weights, {model.get_layer(n).filters for n in names} <= {64, 128, 256, 512})
    try:
        vgg = keras.applications.VGG16(include_top=False, weights=weights,
                                       input_shape=(None, None, 3))
    except Exception as e:  # noqa: BLE001 (no network, a bad file: many types)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if weights != "imagenet":
            raise WeightsError(f"cannot load VGG-16 weights from {weights}: {reason}") from None
        message = ("WARNING: the ImageNet VGG-16 weights could not be downloaded "
                   f"({reason}); the backbone starts from RANDOM weights, so the model "
                   "lacks the pretrained features the paper relies on. Download "
                   f"{IMAGENET_NOTOP_FILE} on a machine that is online and pass it with "
                   "--vgg-weights FILE.")
        warnings.warn(message, stacklevel=2)
        log(message)
        return message
    for name in names:
        model.get_layer(name).set_weights(vgg.get_layer(name).get_weights())
    line = f"VGG-16 backbone: {len(names)} convolutions loaded from {weights}"
    log(line)
    return line


# ---------------------------------------------------------------- the networks


class Hypercolumn(Network):
    """A VGG-16 hypercolumn network (`variant` larsson or varga)."""

    def __init__(self, variant, title, outputs):
        self.name = variant
        self.title = title
        self.outputs = outputs
        self.model_names = (MODEL_NAMES[variant], MODEL_NAMES[variant] + "_any_size")
        self.output_stride = OUTPUT_STRIDE[variant]

    def build(self, cfg, output, input_size=224):
        # The VGG-16 weights are loaded by `initialize` on a fresh run.
        return build(LayerFactory(cfg.model.width), self.name, output, input_size)

    def any_size(self, model, output, global_size=224, with_global_input=False):
        del global_size, with_global_input  # no global path
        return build(LayerFactory(model=model), self.name, output, input_size=None)

    def check(self, cfg):
        check_weights(cfg.model.backbone_weights, cfg.model.width == 1.0)

    def initialize(self, model, cfg):
        return load_backbone_weights(model, cfg.model.backbone_weights)


LARSSON = Hypercolumn("larsson", "Larsson et al. 2016", ("hue_chroma_hist", "lab_hist"))
VARGA = Hypercolumn("varga", "Varga & Szirányi 2016", ("uv",))
