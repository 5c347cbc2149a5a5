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
"""

import keras

from colorization.layers import CropToFractionOf, PadToMultiple

# The same moving-statistics momentum as the Iizuka network (build_model.py), so
# short runs evaluate with statistics that have caught up with the weights.
BN_MOMENTUM = 0.9
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


def _network(L, x, num_bins):
    """L/100 (padded to a multiple of 8) -> logits (B, H/4, W/4, num_bins)."""
    for block, convs in BLOCKS:
        for i, (filters, stride, dilation) in enumerate(convs, 1):
            name = f"{block}_{i}"
            x = L.get(name, lambda n=name, f=filters, s=stride, d=dilation: keras.layers.Conv2D(
                L.ch(f), 3, strides=s, dilation_rate=d, padding="same", activation="relu",
                name=n))(x)
        x = L.get(f"{block}_bn", lambda b=block: keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, name=f"{b}_bn"))(x)
    x = L.get("conv8_1", lambda: keras.layers.Conv2DTranspose(
        L.ch(UPSAMPLE), 4, strides=2, padding="same", activation="relu", name="conv8_1"))(x)
    for i, filters in enumerate(CONV8, 2):
        x = L.get(f"conv8_{i}", lambda i=i, f=filters: keras.layers.Conv2D(
            L.ch(f), 3, padding="same", activation="relu", name=f"conv8_{i}"))(x)
    # float32 logits: the softmax and the cross-entropy need the precision.
    return L.get("ab_bins", lambda: keras.layers.Conv2D(
        num_bins, 1, dtype="float32", name="ab_bins"))(x)


def build(L, num_bins, input_size=224):
    """The network on an input_size x input_size L (None: any size, padded to a
    multiple of 8 and cropped back to ceil(H/4) x ceil(W/4))."""
    gray = keras.Input((input_size, input_size, 1), name="gray")
    if input_size is not None and input_size % 8 == 0:
        logits = _network(L, gray, num_bins)
    else:
        logits = _network(L, PadToMultiple(8, name="pad_to_8")(gray), num_bins)
        logits = CropToFractionOf(OUTPUT_STRIDE, name="crop_to_quarter")([logits, gray])
    name = "zhang2016" if input_size else "zhang2016_any_size"
    return keras.Model(gray, {"ab_bins": logits}, name=name)
