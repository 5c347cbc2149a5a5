"""Zhang, Isola and Efros 2016 (Colorful Image Colorization): their network.

    python build_model.py --preset zhang --summary

A VGG-style stack of eight blocks of 3x3 convolutions with ReLU, batch
normalization closing blocks 1-7, no pooling: blocks 1-3 end with a stride-2
convolution, blocks 5 and 6 are dilated by 2 (a wide receptive field at 1/8
resolution), block 8 starts with a 4x4 stride-2 transposed convolution. A 1x1
convolution then gives logits over the Q quantized ab bins at 1/4 of the input
resolution (56 x 56 for 224 x 224); they are trained with the rebalanced
soft-encoded cross-entropy and decoded by annealed mean (ab_bins.py).

The input is L / 100 as for the Iizuka network (Zhang et al. centre L at 50;
the first batch normalization absorbs the difference). There is no global path
and no class head.

`caffe=True` wires the same layers as Zhang et al.'s Caffe release computes them
(convert_model.py): the input L / 100 turned into L - 50 (ScaleShift), each
stride-2 convolution padded by one pixel on every side (Caffe's pad: 1; Keras's
"same" would pad only the bottom and right of an even size, shifting the image
by a pixel), batch norm with Caffe's epsilon of 1e-5, and the output carrying
the release's own 313 bins and temperature (ab_bins.BinLogits).
"""

import keras

from colorization.ab_bins import BinLogits
from colorization.layers import CropToFractionOf, LayerFactory, PadToMultiple, ScaleShift
from colorization.seam import Network

# (block name, [(filters, stride, dilation), ...]) from the paper's Table 4.
BLOCKS = [
    ("conv1", [(64, 1, 1), (64, 2, 1)]),
    ("conv2", [(128, 1, 1), (128, 2, 1)]),
    ("conv3", [(256, 1, 1), (256, 1, 1), (256, 2, 1)]),
    ("conv4", [(512, 1, 1)] * 3),
    ("conv5", [(512, 1, 2)] * 3),
    ("conv6", [(512, 1, 2)] * 3),
    ("conv7", [(512, 1, 1)] * 3),
]
UPSAMPLE = 256  # conv8_1: transposed 4x4, stride 2
CONV8 = [256, 256]
OUTPUT_STRIDE = 4


CAFFE_INPUT = "l_minus_50"  # the layer that marks a network wired as the Caffe release
CAFFE_BN_EPSILON = 1e-5


def _network(layers, x, output, caffe=None):
    """L/100 (padded to a multiple of 8) -> logits (B, H/4, W/4, Q). caffe: None, or
    {"bins": (313, 2), "temperature": T} for the Caffe release's wiring (and
    "input_scale", "input_offset" for the PyTorch release's input)."""
    if caffe is not None:  # Caffe reads L - 50; the PyTorch release (L - 50) / 100
        x = layers.get(CAFFE_INPUT, lambda: ScaleShift(
            caffe.get("input_scale", 100.0), caffe.get("input_offset", -50.0),
            name=CAFFE_INPUT))(x)
    for block, convs in BLOCKS:
        for i, (filters, stride, dilation) in enumerate(convs, 1):
            name = f"{block}_{i}"
            padding = "same"
            if caffe is not None and stride > 1:
                x = layers.get(name + "_pad", lambda n=name: keras.layers.ZeroPadding2D(
                    1, name=n + "_pad"))(x)
                padding = "valid"
            x = layers.get(name, lambda n=name, f=filters, s=stride, d=dilation, p=padding:
                           keras.layers.Conv2D(layers.ch(f), 3, strides=s, dilation_rate=d,
                                               padding=p, activation="relu", name=n))(x)
        x = layers.batch_norm(f"{block}_bn",
                              epsilon=CAFFE_BN_EPSILON if caffe is not None else 1e-3)(x)
    x = layers.get("conv8_1", lambda: keras.layers.Conv2DTranspose(
        layers.ch(UPSAMPLE), 4, strides=2, padding="same", activation="relu",
        name="conv8_1"))(x)
    for i, filters in enumerate(CONV8, 2):
        x = layers.get(f"conv8_{i}", lambda i=i, f=filters: keras.layers.Conv2D(
            layers.ch(f), 3, padding="same", activation="relu", name=f"conv8_{i}"))(x)
    # float32 logits: the softmax and the cross-entropy need the precision.
    if caffe is not None:
        return layers.get(output.name, lambda: BinLogits(
            caffe["bins"], temperature=caffe["temperature"], dtype="float32",
            name=output.name))(x)
    return layers.get(output.name, lambda: keras.layers.Conv2D(
        output.channels(), 1, activation=output.activation, dtype="float32",
        name=output.name))(x)


def build(layers, output, input_size=224, caffe=None):
    """The network on an input_size x input_size L (None: any size, padded to a
    multiple of 8 and cropped back to ceil(H/4) x ceil(W/4))."""
    gray = keras.Input((input_size, input_size, 1), name="gray")
    if input_size is not None and input_size % 8 == 0:
        logits = _network(layers, gray, output, caffe)
    else:
        logits = _network(layers, PadToMultiple(8, name="pad_to_8")(gray), output, caffe)
        logits = CropToFractionOf(OUTPUT_STRIDE, name="crop_to_quarter")([logits, gray])
    name = "zhang2016" if input_size else "zhang2016_any_size"
    return keras.Model(gray, {output.name: logits}, name=name)


class Zhang(Network):
    name = "zhang"
    title = "Zhang et al. 2016"
    model_names = ("zhang2016", "zhang2016_any_size")
    outputs = ("ab_bins",)
    output_stride = OUTPUT_STRIDE

    def build(self, cfg, output, input_size=224):
        return build(LayerFactory(cfg.model.width), output, input_size)

    def any_size(self, model, output, global_size=224, with_global_input=False):
        del global_size, with_global_input  # no global path
        caffe = ({} if any(layer.name == CAFFE_INPUT for layer in model.layers) else None)
        return build(LayerFactory(model=model), output, input_size=None, caffe=caffe)


NETWORK = Zhang()
