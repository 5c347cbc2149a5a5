"""Files in the layout of Zhang et al.'s Caffe release, written for the tests: a
deploy prototxt built from the published facts (layer names, types, kernel,
stride, pad, dilation) and a caffemodel of random weights (the released files
cannot be downloaded on the build machines)."""

import numpy as np

from colorization import caffe_format

# (caffe name, type, outputs, kernel, stride, pad, dilation) in network order; a
# "norm" entry is a BatchNorm closing the block.
ARCH = []
for block, convs in [(1, [(64, 1, 1), (64, 2, 1)]), (2, [(128, 1, 1), (128, 2, 1)]),
                     (3, [(256, 1, 1), (256, 1, 1), (256, 2, 1)]),
                     (4, [(512, 1, 1)] * 3), (5, [(512, 1, 2)] * 3), (6, [(512, 1, 2)] * 3),
                     (7, [(512, 1, 1)] * 3)]:
    for i, (n, s, d) in enumerate(convs, 1):
        name = "bw_conv1_1" if (block, i) == (1, 1) else f"conv{block}_{i}"
        ARCH.append((name, "Convolution", n, 3, s, d, d))
    ARCH.append((f"conv{block}_{len(convs)}norm", "BatchNorm", None, 0, 1, 0, 1))
ARCH += [("conv8_1", "Deconvolution", 256, 4, 2, 1, 1),
         ("conv8_2", "Convolution", 256, 3, 1, 1, 1),
         ("conv8_3", "Convolution", 256, 3, 1, 1, 1),
         ("conv8_313", "Convolution", 313, 1, 1, 0, 1)]


def prototxt(width=1.0, size=224):
    ch = [max(1, round(n * width)) if n and n != 313 else n for _, _, n, *_ in ARCH]
    lines = ['name: "LtoAB"',
             (f'layer {{ name: "data_l" type: "Input" top: "data_l" '
              f'input_param {{ shape {{ dim: 1 dim: 1 dim: {size} dim: {size} }} }} }}')]
    bottom = "data_l"
    for (name, kind, _, k, s, p, d), n in zip(ARCH, ch, strict=True):
        top = name.replace("bw_", "")
        if kind == "BatchNorm":
            lines.append(f'layer {{ name: "{name}" type: "BatchNorm" bottom: "{bottom}" '
                         f'top: "{name}" batch_norm_param {{ }} }}')
            bottom = name
            continue
        lines.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" '
                     f'convolution_param {{ num_output: {n} pad: {p} kernel_size: {k} '
                     f'stride: {s} dilation: {d} }} }}')
        if name != "conv8_313":
            lines.append(f'layer {{ name: "relu_{top}" type: "ReLU" bottom: "{top}" '
                         f'top: "{top}" }}')
        bottom = top
    lines += [('layer { name: "conv8_313_rh" type: "Scale" bottom: "conv8_313" '
               'top: "conv8_313_rh" scale_param { bias_term: false filler { type: "constant" '
               'value: 2.606 } } }'),
              ('layer { name: "class8_313_rh" type: "Softmax" bottom: "conv8_313_rh" '
               'top: "class8_313_rh" }'),
              ('layer { name: "class8_ab" type: "Convolution" bottom: "class8_313_rh" '
               'top: "class8_ab" convolution_param { num_output: 2 kernel_size: 1 } }')]
    return "\n".join(lines) + "\n"


def pts_in_hull(seed=0):
    """313 distinct ab centres on the grid of 10, in a shuffled order (the order of
    the outputs is the file's, not sorted)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(-90, 100, 10), np.arange(-110, 100, 10),
                                indexing="ij"), -1).reshape(-1, 2)
    return grid[rng.choice(len(grid), 313, replace=False)].astype(np.float64)


def caffemodel(width=1.0, seed=0, pts=None, with_decoding=True):
    """Serialized NetParameter with random weights of the release's shapes."""
    rng = np.random.default_rng(seed)
    net = caffe_format.message("NetParameter")(name="LtoAB")
    channels = 1
    for name, kind, n, k, stride, pad, dilation in ARCH:
        layer = net.layer.add(name=name, type=kind)
        if kind == "BatchNorm":
            factor = 999.98  # Caffe's moving-average factor; mean and variance are scaled
            mean = rng.normal(0, 0.5, channels) * factor
            var = rng.uniform(0.5, 2.0, channels) * factor
            for array in (mean, var, np.array([factor])):
                caffe_format.set_blob(layer.blobs.add(), array)
            continue
        out = n if n == 313 else max(1, round(n * width))
        fan_in = channels * k * k
        shape = (channels, out, k, k) if kind == "Deconvolution" else (out, channels, k, k)
        if kind == "Deconvolution":
            fan_in = out * k * k / 4
        caffe_format.set_blob(layer.blobs.add(),
                              rng.normal(0, np.sqrt(2.0 / fan_in), shape))
        caffe_format.set_blob(layer.blobs.add(), rng.normal(0, 0.1, out))
        # Caffe saves each layer's parameters with its weights.
        p = layer.convolution_param
        p.num_output = out
        p.kernel_size.append(k)
        p.stride.append(stride)
        p.pad.append(pad)
        p.dilation.append(dilation)
        channels = out
    if with_decoding:
        rh = net.layer.add(name="conv8_313_rh", type="Scale")
        caffe_format.set_blob(rh.blobs.add(), np.array([2.606]))
        ab = net.layer.add(name="class8_ab", type="Convolution")
        centres = pts if pts is not None else np.zeros((313, 2))
        caffe_format.set_blob(ab.blobs.add(), np.asarray(centres).T.reshape(2, 313, 1, 1))
        caffe_format.set_blob(ab.blobs.add(), np.zeros(2))
    return net.SerializeToString()
