"""Colorization networks on a pretrained EfficientNet-Lite encoder (efficientnet.py):
the encoder carries what ImageNet taught it about the world, which a few hundred
training photos cannot.

    python build_model.py --preset lite --summary
    python build_model.py --preset lite-hypercolumn --summary

`lite`: Iizuka et al.'s joint network with the encoder in place of their low-level
and global feature networks. The mid-level features are the encoder's stride-8
map (40 channels for Lite0) with its stride-16 map (112) upsampled to it; the
global vector is the 1,280-channel head, averaged, on the 224 x 224 global path,
through two fully connected layers (512, 256 at width 1); then the paper's
fusion layer and colorization network (iizuka.local_to_colour), colour at half
resolution. At 224 x 224 one encoder pass serves both paths (the training model).

`lite_hypercolumn`: Larsson et al.'s hypercolumn on the same encoder: its maps at
strides 2 to 32 brought to stride 4 (area average or bilinear), concatenated, a
1x1 convolution of 1,024 units (width 1) and one to the output's logits.

The gray input L / 100 becomes the gray photo the encoder reads (LiteGrayInput).
model.encoder_training: "frozen" (the encoder's weights and batch-norm statistics
kept), "frozen_bn" (its batch norms kept, the rest trained) or "fine_tune".
The decoder's width follows model.width; the encoder is never narrowed (its
ImageNet weights fix its shape).
"""

import keras

from colorization import efficientnet, iizuka
from colorization.efficientnet import LiteGrayInput, encoder, lite_layers
from colorization.hypercolumn import _conv, _resample
from colorization.layers import (
    AntialiasedResize,
    BilinearUpSampling,
    CropToFractionOf,
    PadToMultiple,
)
from colorization.seam import Network

GLOBAL_FC = [512, 256]
HYPER_STRIDES = [2, 4, 8, 16, 32]
HYPER_STRIDE = 4
HYPER_HIDDEN = 1024
TRAINING_MODES = ("frozen", "frozen_bn", "fine_tune")
ENCODER_PREFIXES = ("lite_b", "lite_stem", "lite_head")  # the encoder's layer names


def _gray_input(layers, gray):
    return layers.get("lite_gray_input", lambda: LiteGrayInput(name="lite_gray_input"))(gray)


def mid_level(layers, features):
    """The stride-8 map with the stride-16 map upsampled to it."""
    up = layers.get("lite_up16", lambda: BilinearUpSampling(2, name="lite_up16"))(features[16])
    return layers.get("lite_mid", lambda: keras.layers.Concatenate(name="lite_mid"))(
        [features[8], up])


def global_features(layers, head):
    """(256-d global features, the 512-d layer that a class head reads)."""
    x = layers.get("lite_pool", lambda: keras.layers.GlobalAveragePooling2D(
        name="lite_pool"))(head)
    fc = {}
    for i, units in enumerate(GLOBAL_FC, 1):
        x = fc[units] = layers.dense_bn_relu(x, f"global_fc{i}", units)
    return fc[256], fc[512]


def set_training_mode(model, mode):
    """Freezes the encoder's layers as `mode` says (before the model is compiled)."""
    if mode not in TRAINING_MODES:
        raise ValueError(f"unknown encoder_training {mode!r} ({', '.join(TRAINING_MODES)})")
    for layer in model.layers:
        if not layer.name.startswith(ENCODER_PREFIXES):
            continue
        if mode == "frozen":
            layer.trainable = False
        elif mode == "frozen_bn":
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return model


class LiteNetwork(Network):
    """What both networks on the encoder share: the encoder's config and weights."""

    has_global_features = False
    has_scene_head = False

    def check(self, cfg):
        efficientnet.variant(cfg.model.encoder)
        if cfg.model.encoder_training not in TRAINING_MODES:
            raise ValueError(f"unknown model.encoder_training {cfg.model.encoder_training!r} "
                             f"({', '.join(TRAINING_MODES)})")
        if cfg.model.backbone_weights not in ("none", ""):
            efficientnet.weights_path(cfg.model.encoder)  # WeightsError (a ValueError)

    def initialize(self, model, cfg):
        if cfg.model.backbone_weights in ("none", ""):
            return (f"{efficientnet.variant(cfg.model.encoder).title} encoder: random "
                    "initialisation (backbone_weights none)")
        return efficientnet.load_weights(model, cfg.model.encoder)

    def spec(self, model_or_cfg):
        if hasattr(model_or_cfg, "model"):
            return efficientnet.variant(model_or_cfg.model.encoder)
        # A saved model: the variant whose block count it has.
        blocks = {int(layer.name.split("_")[1][1:]) for layer in model_or_cfg.layers
                  if layer.name.startswith("lite_b") and layer.name.endswith("_project")}
        # (The stem is 32 filters in every variant: it tells none apart.)
        for spec in efficientnet.VARIANTS.values():
            if len(spec.blocks()) == len(blocks):
                width = model_or_cfg.get_layer(f"lite_b{len(blocks) - 1}_project").filters
                if width == spec.blocks()[-1][-1]:
                    return spec
        raise ValueError("not an EfficientNet-Lite encoder this project knows")


class LiteFusion(LiteNetwork):
    name = "lite"
    title = "Iizuka et al. 2016 on EfficientNet-Lite"
    model_names = ("lite_fusion", "lite_fusion_any_size")
    outputs = ("ab_bins", "ab")
    output_stride = 2
    has_global_features = True
    has_scene_head = True

    def build(self, cfg, output, input_size=224):
        spec = self.spec(cfg)
        layers = lite_layers(cfg.model.width)
        gray = keras.Input((input_size, input_size, 1), name="gray")
        local = encoder(layers, _gray_input(layers, gray), spec,
                        head=input_size == cfg.model.global_size)
        if "head" in local:  # the training size: one encoder pass for both paths
            head = local["head"]
        else:
            resized = keras.layers.Resizing(cfg.model.global_size, cfg.model.global_size,
                                            antialias=True, name="global_resize")(gray)
            head = encoder(layers, _gray_input(layers, resized), spec)["head"]
        features, fc512 = global_features(layers, head)
        colour = iizuka.local_to_colour(layers, mid_level(layers, local), features, output)
        outputs = iizuka._outputs(layers, colour, fc512, cfg.model.num_classes, output,
                                  iizuka.scene_class_names(cfg))
        model = keras.Model(gray, outputs, name="lite_fusion")
        return set_training_mode(model, cfg.model.encoder_training)

    def any_size(self, model, output, global_size=224, with_global_input=False, split=False):
        spec = self.spec(model)
        layers = lite_layers(model=model)
        gray = keras.Input((None, None, 1), name="gray")
        source = keras.Input((None, None, 1), name="global_gray") if with_global_input else gray
        resized = AntialiasedResize(global_size, global_size, name="global_resize")(source)
        head = encoder(layers, _gray_input(layers, resized), spec)["head"]
        features, fc512 = global_features(layers, head)
        if split:  # video: (gray -> global features, [gray, given features] -> colour)
            global_encoder = keras.Model(gray, features, name="global_encoder")
            features = keras.Input((features.shape[-1],), name="global_features")
        # A multiple of 16: the stride-16 map upsampled meets the stride-8 map exactly.
        padded = PadToMultiple(16, name="pad_to_16")(gray)
        local = encoder(layers, _gray_input(layers, padded), spec, last_stride=16)
        colour = iizuka.local_to_colour(layers, mid_level(layers, local), features, output)
        colour = CropToFractionOf(2, name="crop_to_half")([colour, gray])
        if split:
            return global_encoder, keras.Model([gray, features], {output.name: colour},
                                               name="local_decoder_any_size")
        num_classes = model.output["scene"].shape[-1] if "scene" in model.output else 0
        inputs = [gray, source] if with_global_input else gray
        return keras.Model(inputs, iizuka._outputs(layers, colour, fc512, num_classes, output),
                           name="lite_fusion_any_size")

    def split_at_fusion(self, model, output):
        """(encoder: gray -> 256-d global features, decoder: [gray, global features]
        -> colour), the trained model's layers (evaluate.py --ablate-global)."""
        spec = self.spec(model)
        layers = lite_layers(model=model)
        size = model.input_shape[1]
        gray = keras.Input((size, size, 1), name="gray")
        features, _ = global_features(layers, encoder(layers, _gray_input(layers, gray),
                                                      spec)["head"])
        global_encoder = keras.Model(gray, features, name="global_encoder")
        gray2 = keras.Input((size, size, 1), name="gray")
        given = keras.Input((features.shape[-1],), name="global_features")
        local = encoder(layers, _gray_input(layers, gray2), spec, last_stride=16)
        colour = iizuka.local_to_colour(layers, mid_level(layers, local), given, output)
        return global_encoder, keras.Model([gray2, given], {output.name: colour},
                                           name="local_decoder")


class LiteHypercolumn(LiteNetwork):
    name = "lite_hypercolumn"
    title = "Larsson et al. 2016 on EfficientNet-Lite"
    model_names = ("lite_hypercolumn", "lite_hypercolumn_any_size")
    outputs = ("hue_chroma_hist", "lab_hist")
    output_stride = HYPER_STRIDE

    def _wire(self, layers, spec, gray, output, padded):
        x = PadToMultiple(32, name="pad_to_32")(gray) if padded else gray
        features = encoder(layers, _gray_input(layers, x), spec, head=False)
        parts = [_resample(layers, features[s], f"hyper_s{s}", s, HYPER_STRIDE)
                 for s in HYPER_STRIDES]
        hyper = layers.get("hypercolumn", lambda: keras.layers.Concatenate(
            name="hypercolumn"))(parts)
        hidden = _conv(layers, "h_fc1", HYPER_HIDDEN, kernel=1)(hyper)
        out = _conv(layers, output.name, output.channels(), kernel=1,
                    activation=output.activation, output=True)(hidden)
        if padded:
            out = CropToFractionOf(HYPER_STRIDE, name="crop_output")([out, gray])
        return {output.name: out}

    def build(self, cfg, output, input_size=224):
        layers = lite_layers(cfg.model.width)
        gray = keras.Input((input_size, input_size, 1), name="gray")
        outputs = self._wire(layers, self.spec(cfg), gray, output, input_size % 32 != 0)
        model = keras.Model(gray, outputs, name="lite_hypercolumn")
        return set_training_mode(model, cfg.model.encoder_training)

    def any_size(self, model, output, global_size=224, with_global_input=False):
        del global_size, with_global_input  # no global path
        gray = keras.Input((None, None, 1), name="gray")
        outputs = self._wire(lite_layers(model=model), self.spec(model), gray, output, True)
        return keras.Model(gray, outputs, name="lite_hypercolumn_any_size")


FUSION = LiteFusion()
HYPERCOLUMN = LiteHypercolumn()
