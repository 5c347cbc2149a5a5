"""Iizuka, Simo-Serra and Ishikawa 2016 (Let there be Color!): the joint global and
local network (Table 1) and its ab regression output.

    python build_model.py --preset paper --summary

The training model reads a 224 x 224 L whose low-level features are computed once
and shared by the global and the mid-level networks. The any-size wiring runs the
local path at the image's own size (zero-padded to a multiple of 8 and cropped
back) and the global path on the image resized to 224 x 224, or on another image
(the paper's style transfer). Outputs, both float32 whatever the policy (their
losses need the precision):
  colour: (ab + 128) / 255 at half resolution by a sigmoid ("ab", the paper's), or
          the logits of another output space the network accepts ("ab_bins")
  "scene": class probabilities (only when the config has classes)
"""

import keras
import numpy as np

from colorization.layers import (
    AntialiasedResize,
    CropToHalfOf,
    Fusion,
    LayerFactory,
    LightnessToLuma,
    NamedClasses,
    PadToMultiple,
    ResizeToFractionOf,
    ResizeToMultiple,
    ScaleShift,
)
from colorization.seam import Network, OutputSpace

# (filters, stride) of each network, from Table 1 of the paper.
LOW_LEVEL = [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1)]
MID_LEVEL = [(512, 1), (256, 1)]
GLOBAL_CONV = [(512, 2), (512, 1), (512, 2), (512, 1)]
GLOBAL_FC = [1024, 512, 256]
FUSION = 256
COLORIZATION = [("conv", 128), ("up", None), ("conv", 64), ("conv", 64), ("up", None),
                ("conv", 32)]
CLASS_HIDDEN = 256

# Iizuka et al.'s Torch 7 release (convert_model.py, published_torch.py): the layer
# that marks a network wired as the release computes it, reading luma minus the
# training set's mean, and the one that turns its sigmoid o into this project's
# ab01: ab = (2 o - 1) * 100 (colorize.lua), (ab + 128) / 255 = (200 o + 28) / 255.
TORCH_INPUT = "luma_minus_mean"
TORCH_OUTPUT = "ab_from_torch"
TORCH_BN_EPSILON = 1e-5  # nn.SpatialBatchNormalization's default


class AbRegression(OutputSpace):
    """Iizuka et al.'s output: (ab + 128) / 255 by a sigmoid, trained by MSE."""

    name = "ab"
    title = "regression head (ab)"
    activation = "sigmoid"

    def channels(self):
        return 2

    def loss(self, summary=None):
        del summary  # an unweighted MSE
        return keras.losses.MeanSquaredError(name="ab_mse")

    def decode(self, value, temperature=None, gray=None):
        del temperature, gray
        from keras import ops

        return ops.convert_to_numpy(value).astype(np.float32)

    def decode_graph(self, value, temperature=None, gray=None):
        del temperature, gray
        return keras.ops.cast(value, "float32")


AB = AbRegression()


def low_level(layers, x):
    if layers.release is not None:
        x = layers.get(TORCH_INPUT, lambda: LightnessToLuma(layers.release["mean"],
                                                            name=TORCH_INPUT))(x)
    for i, (filters, stride) in enumerate(LOW_LEVEL, 1):
        x = layers.conv_bn_relu(x, f"low{i}", filters, stride)
    return x


def global_features(layers, low):
    """(256-d global features, the 512-d FC output that the class head reads)."""
    x = low
    for i, (filters, stride) in enumerate(GLOBAL_CONV, 1):
        x = layers.conv_bn_relu(x, f"global{i}", filters, stride)
    x = layers.get("global_flatten", lambda: keras.layers.Flatten(name="global_flatten"))(x)
    fc = {}
    for i, units in enumerate(GLOBAL_FC, 1):
        x = layers.dense_bn_relu(x, f"global_fc{i}", units)
        fc[units] = x
    return fc[256], fc[512]


def local_to_colour(layers, low, features, output):
    """Mid-level network, fusion with the global features, colorization network."""
    x = low
    for i, (filters, _) in enumerate(MID_LEVEL, 1):
        x = layers.conv_bn_relu(x, f"mid{i}", filters)
    x = layers.get("fusion", lambda: Fusion(layers.ch(FUSION), name="fusion"))([x, features])
    x = layers.batch_norm("fusion_bn")(x)
    x = layers.get("fusion_relu", lambda: keras.layers.ReLU(name="fusion_relu"))(x)
    n_up = n_conv = 0
    for kind, filters in COLORIZATION:
        if kind == "up":
            n_up += 1
            x = layers.get(f"upsample{n_up}", lambda n=n_up: keras.layers.UpSampling2D(
                2, interpolation="nearest", name=f"upsample{n}"))(x)
        else:
            n_conv += 1
            x = layers.conv_bn_relu(x, f"color{n_conv}", filters)
    # float32 output: the sigmoid and the MSE (or the softmax and the cross-entropy)
    # need the precision under mixed policies.
    colour = layers.get(output.name, lambda: keras.layers.Conv2D(
        output.channels(), 3, padding="same", activation=output.activation, dtype="float32",
        name=output.name))(x)
    if layers.release is not None:
        colour = layers.get(TORCH_OUTPUT, lambda: ScaleShift(
            200.0 / 255.0, 28.0 / 255.0, dtype="float32", name=TORCH_OUTPUT))(colour)
    return colour


def scene_class_names(cfg):
    """The names a new model's scene head carries: ImageNet's with
    model.scene_labels "imagenet" (model_transform.py --top-k prints them)."""
    if cfg.model.scene_labels == "imagenet":
        from colorization.efficientnet import imagenet_class_names

        return imagenet_class_names()
    return ()


def class_head(layers, fc512, num_classes, class_names=()):
    x = layers.dense_bn_relu(fc512, "class_fc1", CLASS_HIDDEN)
    names = class_names or (layers.release or {}).get("class_names")
    if names:  # ImageNet's, or a converted release's scene names (NamedClasses)
        return layers.get("scene", lambda: NamedClasses(
            num_classes, class_names=names, activation="softmax", dtype="float32",
            name="scene"))(x)
    return layers.get("scene", lambda: keras.layers.Dense(num_classes, activation="softmax",
                                                          dtype="float32", name="scene"))(x)


def _outputs(layers, colour, fc512, num_classes, output, class_names=()):
    outputs = {output.name: colour}
    if num_classes:
        outputs["scene"] = class_head(layers, fc512, num_classes, class_names)
    return outputs


def factory_of(model):
    """The layer factory that fetches a built model's layers, knowing its wiring."""
    released = any(layer.name == TORCH_INPUT for layer in model.layers)
    return LayerFactory(model=model, release={} if released else None)


def build(layers, gray, global_size, num_classes, output, name="iizuka2016", class_names=()):
    """The network on a fixed-size input `gray` (its global path shares the
    low-level features when the size is global_size)."""
    low = low_level(layers, gray)
    if gray.shape[1] == global_size:
        global_low = low  # the paper's shared low-level features: computed once
    else:
        resized = keras.layers.Resizing(global_size, global_size, antialias=True,
                                        name="global_resize")(gray)
        global_low = low_level(layers, resized)
    features, fc512 = global_features(layers, global_low)
    colour = local_to_colour(layers, low, features, output)
    return keras.Model(gray, _outputs(layers, colour, fc512, num_classes, output, class_names),
                       name=name)


def build_torch_release(width, num_classes, mean, class_names=()):
    """The network wired as Iizuka et al.'s Torch release computes it, at 224 x 224,
    float32 and untrained (published_torch.py sets its weights); class_names: the
    scene head's, carried by the model."""
    layers = LayerFactory(width, release={"mean": float(mean), "class_names": list(class_names)},
                          epsilon=TORCH_BN_EPSILON)
    gray = keras.Input((224, 224, 1), name="gray")
    return build(layers, gray, 224, num_classes, AB)


class Iizuka(Network):
    name = "iizuka"
    title = "Iizuka et al. 2016"
    model_names = ("iizuka2016", "iizuka2016_any_size")
    outputs = ("ab", "ab_bins")
    output_stride = 2
    has_global_features = True
    has_scene_head = True

    def build(self, cfg, output, input_size=224):
        gray = keras.Input((input_size, input_size, 1), name="gray")
        return build(LayerFactory(cfg.model.width), gray, cfg.model.global_size,
                     cfg.model.num_classes, output, class_names=scene_class_names(cfg))

    def any_size(self, model, output, global_size=224, with_global_input=False, split=False):
        layers = factory_of(model)
        gray = keras.Input((None, None, 1), name="gray")
        source = keras.Input((None, None, 1), name="global_gray") if with_global_input else gray
        resize = AntialiasedResize(global_size, global_size, name="global_resize")
        features, fc512 = global_features(layers, low_level(layers, resize(source)))
        if split:  # video: (gray -> global features, [gray, given features] -> colour)
            encoder = keras.Model(gray, features, name="global_encoder")
            features = keras.Input((features.shape[-1],), name="global_features")
        if layers.release is None:  # this project's networks pad, and crop back
            local = PadToMultiple(8, name="pad_to_8")(gray)
            colour = local_to_colour(layers, low_level(layers, local), features, output)
            colour = CropToHalfOf(name="crop_to_half")([colour, gray])
        else:  # the release rescales to a multiple of 8, and its output to the image
            local = ResizeToMultiple(8, name="resize_to_8")(gray)
            colour = local_to_colour(layers, low_level(layers, local), features, output)
            colour = ResizeToFractionOf(2, name="resize_to_half")([colour, gray])
        if split:
            return encoder, keras.Model([gray, features], {output.name: colour},
                                        name="local_decoder_any_size")
        num_classes = model.output["scene"].shape[-1] if "scene" in model.output else 0
        inputs = [gray, source] if with_global_input else gray
        return keras.Model(inputs, _outputs(layers, colour, fc512, num_classes, output),
                           name="iizuka2016_any_size")

    def split_at_fusion(self, model, output):
        """The trained model split at the fusion: (encoder: gray -> 256-d global
        features, decoder: [gray, global features] -> colour), same layers and
        weights. evaluate.py --ablate-global feeds the decoder a fixed vector."""
        layers = factory_of(model)
        size = model.input_shape[1]
        gray = keras.Input((size, size, 1), name="gray")
        features, _ = global_features(layers, low_level(layers, gray))
        encoder = keras.Model(gray, features, name="global_encoder")
        gray2 = keras.Input((size, size, 1), name="gray")
        given = keras.Input((features.shape[-1],), name="global_features")
        colour = local_to_colour(layers, low_level(layers, gray2), given, output)
        return encoder, keras.Model([gray2, given], {output.name: colour}, name="local_decoder")

    def summary_lines(self, cfg, model, output, rows):
        total = sum(r[2] for r in rows)
        head = sum(r[2] for r in rows if r[0] in ("class_fc1", "scene"))
        gflops = sum(r[3] for r in rows) / 1e9
        # The paper counts the fusion as a 1x1 convolution over the concatenation.
        fusion = model.get_layer("fusion")
        pixels = fusion.output.shape[1] * fusion.output.shape[2]
        concat = gflops + 2 * fusion.global_kernel.shape[0] * fusion.units * pixels / 1e9
        lines = [
            (f"preset {cfg.preset}, width {cfg.model.width:g}, {cfg.model.num_classes} classes, "
             f"{output.describe(model)}"),
            (f"weights and biases: {total:,} ({total / 1e6:.2f}M); without the class head "
             f"{(total - head) / 1e6:.2f}M"),
            (f"forward pass: {gflops:.2f} GFLOP per 224x224 image (low-level features shared); "
             f"{concat:.2f} counting the fusion as a 1x1 convolution of the concatenation"),
        ]
        if cfg.model.width == 1.0 and cfg.model.num_classes == 205 and output is AB:
            lines.append("paper: 42.35M weights and biases (42.17M without the class head), "
                         "about 17.2 GFLOP per 224x224 forward pass")
        return lines


NETWORK = Iizuka()
