"""The custom Keras layers of the colorization network: registered, serializable,
written with keras.ops only so the model runs on the TensorFlow, JAX and PyTorch
backends and a saved `.keras` file loads in safe mode (no Lambda layers).
"""

import keras
from keras import ops

from colorization import colorspace

PACKAGE = "colorization"
# Caffe's ImageNet means (B, G, R) that VGG-16's weights expect subtracted.
VGG_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Fusion(keras.layers.Layer):
    """The paper's fusion layer: y[u, v] = b + W [global ; mid[u, v]] at every pixel.

    Equal to broadcasting the global vector to every position, concatenating it
    with the mid-level features and applying a 1x1 convolution; computed as
    mid @ W_mid + (global @ W_global + b) so the broadcast copy of the global
    vector is never materialised. Works for any batch size and spatial size.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        mid_shape, global_shape = input_shape
        self.mid_kernel = self.add_weight(name="mid_kernel",
                                          shape=(mid_shape[-1], self.units),
                                          initializer="glorot_uniform")
        self.global_kernel = self.add_weight(name="global_kernel",
                                             shape=(global_shape[-1], self.units),
                                             initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        mid, global_features = inputs
        per_image = ops.matmul(global_features, self.global_kernel) + self.bias
        return ops.matmul(mid, self.mid_kernel) + per_image[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Zero-pads height and width at the bottom/right up to a multiple of `multiple`,
    so that three stride-2 convolutions and two 2x upsamplings return to the size."""

    def __init__(self, multiple=8, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        # (m - n % m) % m rather than (-n) % m: the same for n >= 0, with no modulo of
        # a negative number, which tf2onnx's ONNX Mod gets wrong (measured: ab off by
        # 20 on a 307 x 257 photo).
        pad_h = (self.multiple - h % self.multiple) % self.multiple
        pad_w = (self.multiple - w % self.multiple) % self.multiple
        padded = ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        if x.shape[-1] is None:
            return padded
        # Padding by amounts known at run time loses the static channel count, which
        # TFLite's and ONNX's convolutions need (export_model.py): restate it.
        return ops.reshape(padded, (-1, h + pad_h, w + pad_w, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        def padded(n):
            return None if n is None else n + (-n) % self.multiple
        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToFractionOf(keras.layers.Layer):
    """Crops a map at 1/divisor of the reference image's resolution to
    ceil(H/divisor) x ceil(W/divisor), undoing PadToMultiple at the output."""

    def __init__(self, divisor=2, **kwargs):
        super().__init__(**kwargs)
        self.divisor = divisor

    def _size(self, reference):
        return ((ops.shape(reference)[1] + self.divisor - 1) // self.divisor,
                (ops.shape(reference)[2] + self.divisor - 1) // self.divisor)

    def call(self, inputs):
        x, reference = inputs
        h, w = self._size(reference)
        return x[:, :h, :w, :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape

        def part(n):
            return None if n is None else (n + self.divisor - 1) // self.divisor
        return (x_shape[0], part(ref_shape[1]), part(ref_shape[2]), x_shape[3])

    def get_config(self):
        return {**super().get_config(), "divisor": self.divisor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToHalfOf(CropToFractionOf):
    """CropToFractionOf(2), under the name that saved Iizuka models use."""

    def __init__(self, divisor=2, **kwargs):
        super().__init__(divisor, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeToFractionOf(CropToFractionOf):
    """Rescales a map (bilinear) to ceil(H/divisor) x ceil(W/divisor) of the reference
    image: the output side of ResizeToMultiple, as CropToFractionOf is of
    PadToMultiple (the release's output is scaled to the photo, colorize.lua)."""

    def call(self, inputs):
        x, reference = inputs
        h, w = self._size(reference)
        return _resize_axis(_resize_axis(x, 1, h), 2, w)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaleShift(keras.layers.Layer):
    """x * scale + offset: the input convention of a converted published model
    (Zhang et al.'s Caffe network reads L - 50 where this project feeds L / 100)."""

    def __init__(self, scale=1.0, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = float(scale), float(offset)

    def call(self, x):
        return ops.cast(x, self.compute_dtype) * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightnessToLuma(keras.layers.Layer):
    """L / 100 -> the gray image's sRGB value minus `mean`: the input of Iizuka et
    al.'s Torch release, which reads Torch's image.rgb2y (luma of the gamma-encoded
    RGB in [0, 1]) minus the training set's mean. For a gray pixel luma and L are
    one value seen two ways (the CIE lightness of the sRGB-decoded value), so this
    inverts L exactly; for a colour photo it gives the gray of the same lightness.
    The keras.ops twin of colorspace's NumPy f^-1 and sRGB encoding (a layer runs in
    the graph), tested against scikit-image."""

    def __init__(self, mean=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mean = float(mean)

    def call(self, x):
        return ops.cast(lightness_to_srgb(x) - self.mean, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean}


def lightness_to_srgb(x):
    """L / 100 -> the sRGB value in [0, 1] of the gray of that lightness (float32):
    CIE f^-1 (t^3 above 6/29, linear below), then the sRGB encoding."""
    lightness = ops.clip(ops.cast(x, "float32"), 0.0, 1.0) * 100.0
    f = (lightness + 16.0) / 116.0
    y = ops.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / colorspace.KAPPA)
    y = ops.maximum(y, 0.0)
    return ops.where(y > 0.0031308, 1.055 * ops.power(ops.maximum(y, 0.0031308), 1 / 2.4)
                     - 0.055, 12.92 * y)


def _resize_axis(x, axis, size):
    """Bilinear resampling of x along `axis` to `size` samples (a tensor or int),
    half-pixel centres and clamped edges (OpenCV's INTER_LINEAR, Torch's
    image.scale), by gathering: sizes known only at run time need no Python ints."""
    n = ops.shape(x)[axis]
    scale = ops.cast(n, "float32") / ops.cast(size, "float32")
    src = (ops.cast(ops.arange(size), "float32") + 0.5) * scale - 0.5
    src = ops.clip(src, 0.0, ops.cast(n - 1, "float32"))
    low = ops.floor(src)
    frac = src - low
    low = ops.cast(low, "int32")
    high = ops.minimum(low + 1, n - 1)
    shape = [1] * len(x.shape)
    shape[axis] = -1
    frac = ops.cast(ops.reshape(frac, shape), x.dtype)
    a, b = ops.take(x, low, axis=axis), ops.take(x, high, axis=axis)
    return a + (b - a) * frac


def _antialias_weights(n, size):
    """(size, n) weights of a triangle filter from n samples to `size` (an int or a
    tensor): half-pixel centres, the filter widened by the shrink factor, each row
    normalised over the samples it covers (TensorFlow's resize with antialias=True,
    Pillow's bilinear)."""
    scale = ops.cast(n, "float32") / ops.cast(size, "float32")
    width = ops.maximum(scale, 1.0)
    centre = (ops.cast(ops.arange(size), "float32") + 0.5) * scale
    source = ops.cast(ops.arange(n), "float32") + 0.5
    w = ops.maximum(0.0, 1.0 - ops.abs(source[None, :] - centre[:, None]) / width)
    return w / ops.sum(w, axis=1, keepdims=True)


def antialiased_resize_axis(x, axis, size):
    """x resampled along `axis` to `size` (an int or a tensor) by _antialias_weights."""
    weights = _antialias_weights(ops.shape(x)[axis], size)
    moved = ops.moveaxis(ops.cast(x, "float32"), axis, -1)
    return ops.moveaxis(ops.matmul(moved, ops.transpose(weights)), -1, axis)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AntialiasedResize(keras.layers.Layer):
    """Resizes (n, H, W, C) of any size to a fixed (height, width) with the
    antialiased bilinear filter of keras.layers.Resizing(antialias=True), as one
    weight matrix per axis: runs wherever a matmul does (TensorFlow's antialiased
    resize is an op that neither TFLite nor ONNX has; export_model.py)."""

    def __init__(self, height=224, width=224, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, x):
        y = antialiased_resize_axis(antialiased_resize_axis(x, 1, self.height), 2, self.width)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def _rounded_multiple(n, multiple):
    """n rounded to the nearest multiple (at least one multiple), as Torch's
    torch.round(n / 8) * 8 in colorize.lua."""
    k = ops.cast(ops.floor(ops.cast(n, "float32") / multiple + 0.5), "int32")
    return ops.maximum(k, 1) * multiple


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeToMultiple(keras.layers.Layer):
    """Rescales height and width (bilinear) to the nearest multiple of `multiple`:
    how Iizuka et al.'s release prepares an image of any size for its local path
    (colorize.lua rescales; this project's own networks pad, PadToMultiple)."""

    def __init__(self, multiple=8, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        x = _resize_axis(x, 1, _rounded_multiple(ops.shape(x)[1], self.multiple))
        return _resize_axis(x, 2, _rounded_multiple(ops.shape(x)[2], self.multiple))

    def compute_output_shape(self, input_shape):
        def size(n):
            return None if n is None else max(1, int(n / self.multiple + 0.5)) * self.multiple
        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


INFERENCE_DEFAULTS = "inference_defaults"


# The chroma scale's range everywhere (--saturation, the page's slider, a model's own).
MAX_SATURATION = 2.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class InferenceDefaults(keras.layers.Layer):
    """An identity on a model's colour output that carries how the model should be
    run, chosen on a validation set when it was exported (model_train.py --export
    --saturation): `saturation`, the chroma scale that model_transform.py, the web
    page, evaluate.py and the exports use unless told otherwise. A .keras file has
    no other place for it that loads in safe mode."""

    def __init__(self, saturation=1.0, **kwargs):
        super().__init__(**kwargs)
        self.saturation = float(saturation)
        # A hand-edited or foreign file is refused on loading, as --saturation is.
        if not 0.0 <= self.saturation <= MAX_SATURATION:
            raise ValueError(f"saturation {saturation!r} is outside 0-{MAX_SATURATION:g}")

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "saturation": self.saturation}


def model_saturation(model):
    """The saturation a model carries (InferenceDefaults), else 1 (its own colours)."""
    try:
        return float(model.get_layer(INFERENCE_DEFAULTS).saturation)
    except ValueError:
        return 1.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class NamedClasses(keras.layers.Dense):
    """A scene head's last Dense layer that carries its classes' names, so a
    converted published model names its scenes (--top-k) without a run's
    config.json beside it."""

    def __init__(self, units, class_names=(), **kwargs):
        super().__init__(units, **kwargs)
        self.class_names = [str(n) for n in class_names]

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}


@keras.saving.register_keras_serializable(package=PACKAGE)
class VGGGrayInput(keras.layers.Layer):
    """L / 100 (B, H, W, 1) -> the gray image as VGG-16 reads it: 0-255 in three
    (B, G, R) channels, each with its ImageNet mean subtracted."""

    def call(self, x):
        gray = ops.cast(x, self.compute_dtype) * 255.0
        mean = ops.convert_to_tensor(VGG_MEAN_BGR, self.compute_dtype)
        return ops.concatenate([gray, gray, gray], -1) - mean

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BilinearUpSampling(keras.layers.Layer):
    """Bilinear upsampling by an integer factor, equal to
    UpSampling2D(factor, interpolation="bilinear") (half-pixel centres, edges
    clamped), written so that it also runs on inputs whose height and width are
    unknown when a function is traced: UpSampling2D's bilinear path asks for
    them as Python ints. Output pixel k*j + r lies (r + 1/2)/k - 1/2 pixels from
    input pixel j, so each of the k phases is a fixed blend of two shifted copies
    of the input; the phases are then interleaved."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        if self.factor < 1:
            raise ValueError(f"factor {factor!r} is not a positive integer")

    def _along(self, x, axis):
        k = self.factor
        padded = ops.concatenate([_slice(x, axis, 0, 1), x, _last(x, axis)],
                                 axis=axis)  # edges clamped
        n = ops.shape(x)[axis]
        prev = _slice(padded, axis, 0, n)
        here = _slice(padded, axis, 1, n)
        nxt = _slice(padded, axis, 2, n)
        phases = []
        for r in range(k):
            d = (r + 0.5) / k - 0.5
            phases.append(here * (1.0 + d) - prev * d if d < 0 else here * (1.0 - d) + nxt * d)
        stacked = ops.stack(phases, axis=axis + 1)  # (..., n, k, ...)
        shape = ops.shape(x)
        # Static sizes where known: TFLite's convolutions need the channel count.
        new_shape = [x.shape[i] if x.shape[i] is not None else shape[i]
                     for i in range(len(x.shape))]
        new_shape[axis] = n * k
        return ops.reshape(stacked, new_shape)

    def call(self, x):
        if x.shape[1] is None or x.shape[2] is None:
            if keras.backend.backend() == "tensorflow":
                # The backend's resize takes sizes known only at run time (keras.ops'
                # does not): one op where the blends are ~20 per axis, and one Resize
                # node in an ONNX export instead of slices, products and concats
                # (onnxruntime, the shipped model at 224: 5.8 ms -> 1.4 ms a photo).
                import tensorflow as tf  # the backend's own kernel (allowed behind the check)

                shape = tf.shape(x)
                size = tf.stack([shape[1] * self.factor, shape[2] * self.factor])
                return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)
            return self.blend(x)
        # Sizes known (the training models): the backend's own bilinear resize, the
        # same values, and 2.7-3.0x faster forward and backward than the blends (measured
        # on 8x56x56x32, factor 4, 2 cores).
        h, w = x.shape[1] * self.factor, x.shape[2] * self.factor
        return ops.cast(ops.image.resize(x, (h, w), interpolation="bilinear"), x.dtype)

    def blend(self, x):
        """The path for any size: the phases' blends, interleaved."""
        return self._along(self._along(x, 1), 2)

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else n * self.factor
        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _slice(x, axis, start, length):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, start + length)
    return x[tuple(index)]


def _last(x, axis):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(-1, None)
    return x[tuple(index)]


_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization (same weights, config, moving statistics and
    results) that runs TensorFlow's fused kernel on the TensorFlow backend.

    It keeps Keras's class name on purpose: a .keras file stores each layer's
    weights under a path made from its class name (batch_normalization_3/vars),
    so a run saved with Keras's layer resumes into a network built with this one.
    It is saved as colorization>BatchNormalization.

    Keras 3 computes batch norm as a dozen separate element-wise passes in float32
    (moments, the moving-average updates, then the normalization); the fused
    kernel reads the activations once for the statistics and once to normalize,
    in their own dtype (bfloat16 under the mixed policy). On a CPU with AMX that
    was measured 4x faster per layer and the difference between 47% and 89% of
    the matmul peak for a whole training step (bench.py --batch-norm). Other
    backends, masks, renorm, synchronized statistics and axes other than the last
    take Keras's own path, so the layer behaves the same everywhere.
    """

    def _fusable(self, inputs, mask):
        rank = len(inputs.shape)
        return (keras.backend.backend() == "tensorflow" and mask is None
                and not self.renorm and not self.synchronized
                and rank in (2, 4) and self.axis in (-1, rank - 1)
                and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the backend's own kernel (allowed behind the check)

        x = inputs
        if len(inputs.shape) == 2:  # dense features: (B, C) as (B, 1, 1, C)
            x = x[:, None, None, :]
        channels = tf.shape(x)[-1]
        gamma = (tf.convert_to_tensor(self.gamma) if self.scale
                 else tf.ones([channels], tf.float32))
        beta = (tf.convert_to_tensor(self.beta) if self.center
                else tf.zeros([channels], tf.float32))
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True)[:3]
            # The kernel returns the unbiased (n - 1) variance for the moving
            # average; Keras averages the biased one, as the normalization uses.
            n = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum
                                    + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + variance * (1.0 - self.momentum))
        else:
            y = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance),
                epsilon=self.epsilon, is_training=False)[0]
        if len(inputs.shape) == 2:
            y = y[:, 0, 0, :]
        return tf.cast(y, self.compute_dtype)


# ---------------------------------------------------------------- building networks

# Torch's batch-norm momentum of 0.1 (the reference implementation's framework),
# i.e. Keras's 0.9: the moving statistics follow the weights within tens of steps.
# Every network of the project uses it, so short runs evaluate with statistics
# that have caught up with the weights.
BN_MOMENTUM = 0.9


# Networks are built with the BatchNormalization above; bench.py sets this to False to
# measure the same network with Keras's own layer (the figure before the change).
FUSED_BATCH_NORM = True


class LayerFactory:
    """Creates each named layer once (a fresh build) or fetches it from a built
    model, so one builder wires both a training model and its any-size twin with
    the same layers and weights.

    release: None for this project's own networks, else the conventions of a
    converted published model (a dict; {} when fetched from a model): its stride-2
    convolutions pad one pixel on every side (Caffe's and Torch's pad 1, where
    Keras's "same" pads only the bottom and right of an even size) and its batch
    norms use `epsilon`."""

    def __init__(self, width=1.0, model=None, release=None, epsilon=1e-3):
        self.width, self.model, self.cache = width, model, {}
        self.release, self.epsilon = release, epsilon

    def ch(self, n):
        """n channels scaled by the width (at least 1)."""
        return max(1, round(n * self.width))

    def get(self, name, factory):
        if self.model is not None:
            return self.model.get_layer(name)
        if name not in self.cache:
            self.cache[name] = factory()
        return self.cache[name]

    def batch_norm(self, name, epsilon=None):
        kind = BatchNormalization if FUSED_BATCH_NORM else keras.layers.BatchNormalization
        epsilon = self.epsilon if epsilon is None else epsilon
        return self.get(name, lambda: kind(momentum=BN_MOMENTUM, epsilon=epsilon, name=name))

    def conv_bn_relu(self, x, name, filters, stride=1):
        padding = "same"
        if self.release is not None and stride > 1:
            x = self.get(name + "_pad", lambda: keras.layers.ZeroPadding2D(
                1, name=name + "_pad"))(x)
            padding = "valid"
        conv = self.get(name, lambda: keras.layers.Conv2D(
            self.ch(filters), 3, strides=stride, padding=padding, name=name))
        relu = self.get(name + "_relu", lambda: keras.layers.ReLU(name=name + "_relu"))
        return relu(self.batch_norm(name + "_bn")(conv(x)))

    def dense_bn_relu(self, x, name, units):
        dense = self.get(name, lambda: keras.layers.Dense(self.ch(units), name=name))
        relu = self.get(name + "_relu", lambda: keras.layers.ReLU(name=name + "_relu"))
        return relu(self.batch_norm(name + "_bn")(dense(x)))


# The encoder networks' input layers (efficientnet.py) and the paper's optimizer
# (optimizers.py, which a compiled model's file names) are registered too, so that
# importing this module is enough to load any of the project's models in safe mode.
# Imported last: efficientnet.py builds on the names above.
from colorization import efficientnet as _efficientnet  # noqa: F401
from colorization import optimizers as _optimizers  # noqa: F401
