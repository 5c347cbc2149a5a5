"""The authors' published models, converted into this project's networks.

Zhang et al. 2016, PyTorch release (colorization_release_v2-9b330a0b.pth, the
state_dict of their colorizers/eccv16.py): the same network as the Caffe
release, named model1..model8 (nn.Sequential: convolutions at even indices,
ReLU between, nn.BatchNorm2d closing blocks 1-7, with scale and shift) and
model_out, a 1x1 convolution without bias from the 313 softmax probabilities to
ab / 110; it reads (L - 50) / 100 and applies no temperature (the softmax of the
logits as they are: T = 1). The bins are model_out's weights times 110.

Zhang et al. 2016, Caffe release (colorization_deploy_v2.prototxt,
colorization_release_v2.caffemodel or its _norebal twin, pts_in_hull.npy). Facts
of the release this conversion follows:
- the network reads L - 50 at 224 x 224 (ScaleShift(100, -50) of our L / 100);
- blocks 1-7 end in Caffe `BatchNorm` layers without scale and shift, whose
  blobs are the mean, the variance and a moving-average factor both are divided
  by (0 means 1/0 -> 0, as Caffe does); Caffe's epsilon is 1e-5;
- convolutions are stored (out, in, kh, kw) and the conv8_1 deconvolution
  (in, out, kh, kw); Keras wants (kh, kw, in, out) and (kh, kw, out, in);
- conv8_313 gives 313 logits at a quarter of the input size, conv8_313_rh scales
  them by 2.606 before the softmax (an annealed mean at T = 1 / 2.606), and
  class8_ab is a 1x1 convolution whose weights are the bin centres, which
  pts_in_hull.npy holds in the order of the 313 outputs.
"""

import numpy as np

from colorization import caffe_format
from colorization.caffe_format import CaffeError
from colorization.zhang import BLOCKS, CONV8

RH_SCALE = 2.606  # the release's conv8_313_rh, where the file does not hold it


def built_in_float32(build):
    """build() under the float32 policy, whatever policy the process has (the
    releases' weights are float32); the policy is put back for the caller."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(previous)


def set_weights(model, layer_name, values, width, source, error=CaffeError):
    """Sets a layer's weights after checking their shapes; `error` names the source."""
    layer = model.get_layer(layer_name)
    want = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(v.shape) for v in values]
    if got != want:
        raise error(f"{source}: weights of shape {got}, the network at width {width:g} "
                    f"needs {want}")
    layer.set_weights(values)


def _caffe_conv_names():
    """[(caffe layer, our layer, stride, dilation, kind)] in network order."""
    rows = []
    for block, convs in BLOCKS:
        for i, (_, stride, dilation) in enumerate(convs, 1):
            ours = f"{block}_{i}"
            rows.append((ours, ours, stride, dilation, "Convolution"))
        rows.append((f"{block}_{len(convs)}norm", f"{block}_bn", 1, 1, "BatchNorm"))
    rows.append(("conv8_1", "conv8_1", 2, 1, "Deconvolution"))
    for i in range(2, 2 + len(CONV8)):
        rows.append((f"conv8_{i}", f"conv8_{i}", 1, 1, "Convolution"))
    rows.append(("conv8_313", "ab_bins", 1, 1, "Convolution"))
    return rows


def _check_structure(net, source):
    """CaffeError naming the first layer whose type, stride or dilation differs from
    the release's (a prototxt or a caffemodel of another network)."""
    layers = {layer.name: layer for layer in net.layer}
    layers.setdefault("conv1_1", layers.get("bw_conv1_1"))
    for caffe, _, stride, dilation, kind in _caffe_conv_names():
        layer = layers.get(caffe)
        if layer is None:
            raise CaffeError(f"{source} is not Zhang et al.'s colorization network "
                             f"(no layer {caffe!r})")
        if layer.type != kind:
            raise CaffeError(f"{source}: layer {caffe!r} is a {layer.type}, the release's is "
                             f"a {kind}")
        if kind == "BatchNorm" or not layer.HasField("convolution_param"):
            continue
        p = layer.convolution_param
        got = ((list(p.stride) or [1])[0], (list(p.dilation) or [1])[0])
        if got != (stride, dilation):
            raise CaffeError(f"{source}: layer {caffe!r} has stride {got[0]} and dilation "
                             f"{got[1]}; the release's has {stride} and {dilation}")


def _temperature(weights, prototxt):
    if "conv8_313_rh" in weights and weights["conv8_313_rh"][1]:
        scale = float(np.ravel(weights["conv8_313_rh"][1][0])[0])
    elif prototxt is not None and any(layer.name == "conv8_313_rh" for layer in prototxt.layer):
        layer = next(layer for layer in prototxt.layer if layer.name == "conv8_313_rh")
        scale = layer.scale_param.filler.value or RH_SCALE
    else:
        scale = RH_SCALE
    if not scale > 0:
        raise CaffeError(f"conv8_313_rh scales the logits by {scale}; it must be > 0")
    return 1.0 / scale


def _bins(weights, pts):
    if pts is not None:
        return pts
    kernel = weights.get("class8_ab", (None, []))[1]
    if kernel and kernel[0].size == 2 * 313 and np.any(kernel[0]):
        return kernel[0].reshape(2, 313).T
    raise CaffeError("the 313 ab bin centres are missing: give pts_in_hull.npy (published "
                     "beside the caffemodel)")


def read_pts(data):
    """bytes of pts_in_hull.npy -> (313, 2) float32, never unpickling."""
    import io

    try:
        pts = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CaffeError(f"not a NumPy array file of bin centres ({str(e)[:80]})") from None
    if pts.shape != (313, 2) or not np.all(np.isfinite(pts)):
        raise CaffeError(f"pts_in_hull.npy should hold 313 ab centres (313, 2); this array is "
                         f"{pts.shape}")
    return pts.astype(np.float32)


def zhang_caffe_model(caffemodel, prototxt=None, pts=None):
    """A Keras model (zhang.py wired as the release, caffe=...) with the weights of a
    parsed caffemodel (NetParameter); prototxt: the parsed deploy file, checked too."""

    from colorization import ab_bins, zhang
    from colorization.layers import LayerFactory

    for net, source in ((caffemodel, "the caffemodel"), (prototxt, "the prototxt")):
        if net is not None:
            _check_structure(net, source)
    weights = caffe_format.weights_by_layer(caffemodel)
    if "bw_conv1_1" in weights:
        weights["conv1_1"] = weights.pop("bw_conv1_1")
    first = weights["conv1_1"][1][0]
    if first.ndim != 4 or first.shape[1] != 1:
        raise CaffeError(f"conv1_1 has weights of shape {first.shape}; the release reads one "
                         "channel (L)")
    width = first.shape[0] / 64.0
    caffe = {"bins": _bins(weights, pts), "temperature": _temperature(weights, prototxt)}
    model = built_in_float32(lambda: zhang.build(LayerFactory(width), ab_bins.AB_BINS, 224,
                                                 caffe=caffe))
    for caffe_name, ours, _, _, kind in _caffe_conv_names():
        blobs = weights.get(caffe_name, (None, []))[1]
        layer = model.get_layer(ours)
        want = [tuple(w.shape) for w in layer.get_weights()]
        if kind == "BatchNorm":
            if len(blobs) < 3:
                raise CaffeError(f"{caffe_name} holds {len(blobs)} blobs; Caffe's BatchNorm "
                                 "has 3 (mean, variance, factor)")
            factor = float(np.ravel(blobs[2])[0])
            factor = 0.0 if factor == 0 else 1.0 / factor
            values = [np.ones(want[0], np.float32), np.zeros(want[1], np.float32),
                      blobs[0] * factor, blobs[1] * factor]
        else:
            if len(blobs) != 2:
                raise CaffeError(f"{caffe_name} holds {len(blobs)} blobs; a convolution with "
                                 "bias has 2")
            values = [blobs[0].transpose(2, 3, 1, 0), blobs[1].reshape(-1)]
        set_weights(model, ours, values, width, caffe_name)
    return model, {"width": width, "temperature": caffe["temperature"],
                   "bins": len(caffe["bins"])}


PYTORCH_AB_NORM = 110.0  # eccv16.py's unnormalize_ab: ab = output * 110


def zhang_pytorch_model(state):
    """A Keras model (zhang.py wired as the release) with the weights of a read
    state_dict of Zhang et al.'s PyTorch release; returns (model, info)."""

    from colorization import ab_bins, zhang
    from colorization.layers import LayerFactory

    def get(name, ndim=None):
        value = state.get(name)
        if value is None:
            raise CaffeError(f"no {name!r} in the state_dict: not Zhang et al.'s ECCV16 "
                             "generator (model1..model8, model_out)")
        if ndim is not None and value.ndim != ndim:
            raise CaffeError(f"{name} has shape {value.shape}, not {ndim}-d")
        return value.astype(np.float32)

    out_w = get("model_out.weight", 4)
    if out_w.shape[:2] != (2, 313):
        raise CaffeError(f"model_out.weight has shape {out_w.shape}; the release maps 313 "
                         "bins to ab (2, 313, 1, 1)")
    first = get("model1.0.weight", 4)
    if first.shape[1] != 1:
        raise CaffeError(f"model1.0.weight has shape {first.shape}; the release reads one "
                         "channel (L)")
    width = first.shape[0] / 64.0
    caffe = {"bins": out_w[:, :, 0, 0].T * PYTORCH_AB_NORM, "temperature": 1.0,
             "input_scale": 1.0, "input_offset": -0.5}
    model = built_in_float32(lambda: zhang.build(LayerFactory(width), ab_bins.AB_BINS, 224,
                                                 caffe=caffe))

    def put(layer_name, values, source):
        set_weights(model, layer_name, values, width, source)

    used = {"model_out.weight"}
    for b, (block, convs) in enumerate(BLOCKS, 1):
        for i in range(len(convs)):
            key = f"model{b}.{2 * i}"
            put(f"{block}_{i + 1}", [get(key + ".weight", 4).transpose(2, 3, 1, 0),
                                     get(key + ".bias", 1)], key)
            used |= {key + ".weight", key + ".bias"}
        key = f"model{b}.{2 * len(convs)}"
        names = [f"{key}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        put(f"{block}_bn", [get(n, 1) for n in names], key)
        used |= set(names) | {key + ".num_batches_tracked"}
    rows = [("model8.0", "conv8_1", (2, 3, 1, 0))]
    rows += [(f"model8.{2 * i}", f"conv8_{i + 1}", (2, 3, 1, 0)) for i in range(1, 1 + len(CONV8))]
    for key, ours, order in rows:  # the transposed one: (in, out, kh, kw) -> (kh, kw, out, in)
        put(ours, [get(key + ".weight", 4).transpose(order), get(key + ".bias", 1)], key)
        used |= {key + ".weight", key + ".bias"}
    key = f"model8.{2 * (1 + len(CONV8))}"
    put("ab_bins", [get(key + ".weight", 4).transpose(2, 3, 1, 0), get(key + ".bias", 1)], key)
    used |= {key + ".weight", key + ".bias"}
    extra = sorted(set(state) - used)
    if extra:
        raise CaffeError(f"the state_dict holds {len(extra)} tensors the release does not "
                         f"(first: {extra[0]}); another network")
    return model, {"width": width, "temperature": 1.0, "bins": 313}
