"""The colour conversions an exported model runs inside its graph (keras.ops).

colorspace.py is the NumPy implementation every script uses on the CPU; a model
exported for another runtime (export_model.py: SavedModel, TFLite, ONNX) takes
and returns uint8 images, so the same formulas must run as graph operations.
They are written here once, from colorspace's constants (the same matrices,
white point, epsilon and kappa), and tests/test_export.py checks them against
scikit-image and against colorspace.
"""

import keras
from keras import ops

from colorization import colorspace

# colorspace's own constants (its private names: one owner of the numbers).
_RGB_TO_XYZN = colorspace._RGB_TO_XYZN
_XYZN_TO_RGB = colorspace._XYZN_TO_RGB
_EPSILON = float(colorspace._EPSILON)
_KAPPA = float(colorspace.KAPPA)
# In-gamut test and bisection as colorspace._fit_chroma (the output path of
# model_transform.py: chroma reduced at fixed L and hue until the colour fits).
FIT_STEPS, FIT_TOLERANCE = 10, 1e-4


def image_to_rgb01(image):
    """uint8 (n, H, W, C) -> float RGB in [0, 1] (n, H, W, 3): C = 1 is gray (its
    channel read three times), C = 3 RGB, C = 4 RGBA (alpha ignored). The channel
    count may be unknown until run time, so the channels are gathered."""
    channels = ops.shape(image)[-1]
    index = ops.minimum(ops.arange(3), channels - 1)
    return ops.take(ops.cast(image, "float32"), index, axis=-1) / 255.0


def srgb_to_linear(rgb01):
    return ops.where(rgb01 > 0.04045, ops.power((rgb01 + 0.055) / 1.055, 2.4), rgb01 / 12.92)


def linear_to_srgb(linear):
    safe = ops.maximum(linear, 0.0031308)  # pow's gradient and value stay finite
    return ops.where(linear > 0.0031308, 1.055 * ops.power(safe, 1.0 / 2.4) - 0.055,
                     12.92 * linear)


def _f(t):
    cube_root = ops.power(ops.maximum(t, _EPSILON), 1.0 / 3.0)
    return ops.where(t > _EPSILON, cube_root, (_KAPPA * t + 16.0) / 116.0)


def _f_inverse(f):
    return ops.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / _KAPPA)


def _planes(x):
    """(..., 3) -> its three channels as separate (...) tensors."""
    return x[..., 0], x[..., 1], x[..., 2]


def _times(matrix, planes):
    """The row vector `planes` times a 3 x 3 constant matrix, as sums of scaled planes.
    Why not ops.matmul: onnxruntime runs a broadcast between a (..., 3) or (..., 1)
    tensor and a constant 100x slower than between same-shaped ones (measured,
    1.32: 0.5 ms against 5 us on 224 x 224), and the colour arithmetic of an
    exported graph was half its time; on planes every operand is a scalar or alike."""
    m = matrix.astype("float64")
    return tuple(planes[0] * float(m[0, j]) + planes[1] * float(m[1, j])
                 + planes[2] * float(m[2, j]) for j in range(3))


def _rgb_planes_to_lab(r, g, b):
    linear = [srgb_to_linear(ops.clip(c, 0.0, 1.0)) for c in (r, g, b)]
    fx, fy, fz = (_f(c) for c in _times(_RGB_TO_XYZN, linear))
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def lightness(rgb01):
    """float RGB in [0, 1] (..., 3) -> L in [0, 100] (...): rgb_to_lab's L alone."""
    linear = [srgb_to_linear(ops.clip(c, 0.0, 1.0)) for c in _planes(rgb01)]
    y = sum(c * float(_RGB_TO_XYZN[i, 1]) for i, c in enumerate(linear))
    return 116.0 * _f(y) - 16.0


def rgb_to_lab(rgb01):
    """float RGB in [0, 1] (..., 3) -> Lab (..., 3), L in [0, 100]."""
    return ops.stack(_rgb_planes_to_lab(*_planes(rgb01)), -1)


def _lab_planes_to_linear(light, a, b):
    fy = (light + 16.0) / 116.0
    xyz = (_f_inverse(fy + a / 500.0), _f_inverse(fy), _f_inverse(fy - b / 200.0))
    return _times(_XYZN_TO_RGB, xyz)


def lab_to_linear(lab):
    """Lab (..., 3) -> linear RGB (..., 3), not clipped (outside [0, 1]: out of gamut)."""
    return ops.stack(_lab_planes_to_linear(*_planes(lab)), -1)


def lab_to_rgb(lab):
    """Lab -> float RGB in [0, 1], out-of-gamut colours clipped (colorspace.lab_to_rgb)."""
    return ops.clip(linear_to_srgb(ops.clip(lab_to_linear(lab), 0.0, 1.0)), 0.0, 1.0)


def _fits(linear_planes):
    r, g, b = linear_planes
    top = ops.maximum(ops.maximum(r, g), b)
    bottom = ops.minimum(ops.minimum(r, g), b)
    return (top <= 1.0 + FIT_TOLERANCE) & (bottom >= -FIT_TOLERANCE)


def _bisect_scale(light, a, b):
    """The largest factor in [0, 1] that scales (a, b) into the gamut at fixed L and
    hue, by bisection to 2^-FIT_STEPS, as colorspace._fit_chroma (for colours that do
    not fit as they are). What does not change with the factor (Y, its share of each
    RGB channel, a / 500, b / 200) is computed once."""
    m = _XYZN_TO_RGB.astype("float64")
    fy = (light + 16.0) / 116.0
    y = _f_inverse(fy)
    from_y = [y * float(m[1, j]) for j in range(3)]
    da, db = a / 500.0, b / 200.0

    def fits(s):
        x = _f_inverse(fy + da * s)
        z = _f_inverse(fy - db * s)
        return _fits([x * float(m[0, j]) + from_y[j] + z * float(m[2, j]) for j in range(3)])

    # After k steps hi - lo is exactly 2^-k, so only lo is carried: mid = lo + 2^-(k+1),
    # and lo moves up to mid where mid fits (the same floats as (lo + hi) / 2, exactly).
    lo = ops.zeros_like(light)
    for k in range(FIT_STEPS):
        half = 0.5 ** (k + 1)
        lo = lo + ops.cast(fits(lo + half), lo.dtype) * half
    return lo


def _positions(mask):
    """The positions of a 1-D mask's true entries, in order: ops.nonzero, which the
    TFLite converter refuses (it cannot write the Unpack of tf.where's int64 output).
    Each true entry's rank among them (a cumulative sum) is where its position is
    scattered; the false ones all go to one slot past the end, which is cut off."""
    ones = ops.cast(mask, "int32")
    count = ops.sum(ones)
    slot = ops.where(mask, ops.cumsum(ones) - 1, count)
    everywhere = ops.arange(ops.shape(mask)[0], dtype="int32")
    return ops.scatter(slot[:, None], everywhere, (count + 1,))[:count]


def _fit_chroma_planes(light, a, b):
    """(L, a, b) planes with each out-of-gamut colour's a and b scaled down (fixed L and
    hue) by the largest factor in [0, 1] that fits (_bisect_scale):
    colorspace.fit_chroma_to_gamut.

    As colorspace._fit_chroma, only the colours that do not fit are bisected: they
    are gathered, and their factors scattered back. The bisection is about 500
    element-wise ops, and a model's colours rarely leave the gamut (0.6% of the
    pixels of 12 gathered training photos with the shipped model, at most 13% of
    one strip). Measured in onnxruntime, the colour output at 224 x 224 (Lab ->
    fitted uint8 RGB): 5.3 -> 3.0 ms on a photo's Lab, 10.6 -> 7.2 ms on random Lab
    (mostly out of gamut). Under jax.jit shapes are static: every pixel is bisected."""
    fits_now = _fits(_lab_planes_to_linear(light, a, b))
    if keras.backend.backend() == "jax":
        s = ops.where(fits_now, ops.ones_like(light), _bisect_scale(light, a, b))
        return light, a * s, b * s
    shape = ops.shape(light)
    flat = [ops.reshape(p, (-1,)) for p in (light, a, b)]
    index = _positions(ops.logical_not(ops.reshape(fits_now, (-1,))))
    # 1 - s where a colour does not fit, 0 elsewhere: scattered into zeros.
    cut = 1.0 - _bisect_scale(*(ops.take(p, index) for p in flat))
    s = ops.reshape(1.0 - ops.scatter(index[:, None], cut, ops.shape(flat[0])), shape)
    return light, a * s, b * s


def lab_to_rgb8(lab):
    """Lab -> uint8 RGB with chroma fitted into the gamut (colorspace.lab_to_rgb8)."""
    return lab_planes_to_rgb8(*_planes(lab))


def lab_planes_to_rgb8(light, a, b):
    """L, a, b as three (...) tensors -> uint8 RGB (..., 3): lab_to_rgb8."""
    linear = _lab_planes_to_linear(*_fit_chroma_planes(light, a, b))
    rgb = [ops.clip(linear_to_srgb(ops.clip(c, 0.0, 1.0)), 0.0, 1.0) for c in linear]
    return ops.cast(ops.floor(ops.stack(rgb, -1) * 255.0 + 0.5), "uint8")


def yuv_to_rgb01(yuv):
    """YUV in 8-bit units (colorspace.rgb_to_yuv) -> float RGB in [0, 1], clipped."""
    offset = ops.convert_to_tensor(colorspace._YUV_OFFSET.astype("float32"))
    inverse = ops.convert_to_tensor(colorspace._YUV_TO_RGB.T.astype("float32"))
    return ops.clip(ops.matmul(yuv - offset, inverse) / 255.0, 0.0, 1.0)


def ab_from_uv(lightness, uv):
    """L in [0, 100] (...) and U, V in 8-bit units (..., 2) -> ab (..., 2):
    colorspace.ab_from_uv (the luma of the gray of that L, then YUV -> RGB -> Lab)."""
    zeros = ops.zeros_like(lightness)
    gray = lab_to_rgb(ops.stack([lightness, zeros, zeros], -1))[..., 0]
    yuv = ops.concatenate([gray[..., None] * 255.0, uv], -1)
    return rgb_to_lab(yuv_to_rgb01(yuv))[..., 1:]
