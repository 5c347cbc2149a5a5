"""A trained model as one graph from a uint8 photo to the colorized uint8 photo:
what export_model.py writes as a SavedModel, TFLite or ONNX file, so that a user
needs no code of this repository to colorize.

The graph does what model_transform.py does around the network: the photo's L
(graph_colour), the network's input capped at `max_side` on its long side, the
decoding of the output space to ab (each space's decode_graph), ab upsampled
bilinearly to the photo's size, and the photo's own L joined with it, chroma
fitted into the gamut. One difference: model_transform.py shrinks a photo over
`max_side` by area averaging (cv2.INTER_AREA) before taking L; the graph shrinks
L with an antialiased triangle filter (layers.antialiased_resize_axis), so above
the cap the two differ slightly. At or under it they agree to rounding.
"""

import keras
from keras import ops

from colorization import graph_colour, systems
from colorization.layers import PACKAGE, ResizeToFractionOf, antialiased_resize_axis


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageToLightness(keras.layers.Layer):
    """uint8 image (n, H, W, C: 1 gray, 3 RGB, 4 RGBA) -> L / 100 (n, H, W, 1)."""

    def call(self, image):
        light = graph_colour.lightness(graph_colour.image_to_rgb01(image))
        return ops.expand_dims(light / 100.0, -1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)


def _capped(n, longest, max_side):
    """n scaled by max_side / longest, rounded, at least 1: inference.network_size."""
    scaled = ops.cast(n, "float32") * (float(max_side) / ops.cast(longest, "float32"))
    return ops.maximum(ops.cast(ops.floor(scaled + 0.5), "int32"), 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CapLongSide(keras.layers.Layer):
    """Shrinks (antialiased bilinear) an image whose long side exceeds max_side to that long
    side, as model_transform.py's --max-side (0: no cap); smaller ones pass."""

    def __init__(self, max_side=512, **kwargs):
        super().__init__(**kwargs)
        self.max_side = int(max_side)

    def call(self, x):
        if not self.max_side:
            return x
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        longest = ops.maximum(h, w)
        over = longest > self.max_side
        new_h = ops.where(over, _capped(h, longest, self.max_side), h)
        new_w = ops.where(over, _capped(w, longest, self.max_side), w)
        return antialiased_resize_axis(antialiased_resize_axis(x, 1, new_h), 2, new_w)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "max_side": self.max_side}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DecodeColour(keras.layers.Layer):
    """[the network's colour output, its gray input] -> ab01 (n, h, w, 2): the output
    space's decode_graph. `centres`: a model's own ab bins (a converted release)."""

    def __init__(self, output="ab", temperature=None, centres=None, **kwargs):
        super().__init__(**kwargs)
        self.output_name = output
        self.temperature = None if temperature is None else float(temperature)
        self.centres = None if centres is None else [[float(v) for v in c] for c in centres]

    def _space(self):
        space = systems.OUTPUTS[self.output_name]
        return space if self.centres is None else type(space)(self.centres)

    def call(self, inputs):
        value, gray = inputs
        return self._space().decode_graph(value, self.temperature, gray)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (2,)

    def get_config(self):
        return {**super().get_config(), "output": self.output_name,
                "temperature": self.temperature, "centres": self.centres}


@keras.saving.register_keras_serializable(package=PACKAGE)
class JoinLightness(keras.layers.Layer):
    """[L / 100 (n, H, W, 1), ab01 (n, H, W, 2)] -> {"rgb": uint8, "ab": ab units}:
    the photo's own L with the predicted ab, chroma fitted into the gamut."""

    def call(self, inputs):
        l01, ab01 = inputs
        # as planes: see graph_colour._times
        ab01 = ops.cast(ab01, "float32")
        return graph_colour.lab_planes_to_rgb8(ops.cast(l01[..., 0], "float32") * 100.0,
                                               ab01[..., 0] * 255.0 - 128.0,
                                               ab01[..., 1] * 255.0 - 128.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (3,)

    def compute_output_spec(self, inputs):
        l01 = inputs[0]
        return keras.KerasTensor(tuple(l01.shape[:-1]) + (3,), dtype="uint8")


def serving_model(model, max_side=512, temperature=None, global_size=None, saturation=None):
    """uint8 photo (n, H, W, C) of any size -> {"rgb": uint8 (n, H, W, 3), "ab":
    float32 ab (n, H, W, 2)}, the same layers and weights as `model`, computed in
    float32 whatever the policy it was trained under (inference.float32_model)."""
    from colorization.inference import float32_model
    from colorization.layers import model_saturation

    model = float32_model(model)
    saturation = model_saturation(model) if saturation is None else saturation
    network, output = systems.of_model(model)
    size = int(global_size or model.input_shape[1] or 224)
    net = network.any_size(model, output, size)
    image = keras.Input((None, None, None), dtype="uint8", name="image")
    lightness = ImageToLightness(name="lightness", dtype="float32")(image)
    small = CapLongSide(max_side, name="cap_long_side", dtype="float32")(lightness)
    colour = net(small)[output.name]
    centres = getattr(output, "centres", None)
    ab01 = DecodeColour(output.name, temperature,
                        None if centres is None else centres().tolist(),
                        name="decode", dtype="float32")([colour, small])
    if saturation != 1.0:  # baked in (export_model.py --saturation): colorspace.saturate_ab01
        neutral = 128.0 / 255.0
        ab01 = keras.layers.Rescaling(float(saturation), neutral * (1.0 - float(saturation)),
                                      name="saturation", dtype="float32")(ab01)
        ab01 = keras.layers.ReLU(max_value=1.0, name="saturation_clip", dtype="float32")(ab01)
    full = ResizeToFractionOf(1, name="ab_to_photo", dtype="float32")([ab01, lightness])
    rgb = JoinLightness(name="join_lightness", dtype="float32")([lightness, full])
    ab = keras.layers.Rescaling(255.0, -128.0, name="ab", dtype="float32")(full)
    return keras.Model(image, {"rgb": rgb, "ab": ab}, name=f"{model.name}_serving")
