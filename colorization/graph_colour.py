"""The colour conversions an exported model runs inside its graph (keras.ops).

colorspace.py is the NumPy implementation every script uses on the CPU; a model
exported for another runtime (export_model.py: SavedModel, TFLite, ONNX) takes
and returns uint8 images, so the same formulas must run as graph operations.
They are written here once, from colorspace's constants (the same matrices,
white point, epsilon and kappa), and tests/test_export.py checks them against
scikit-image and against colorspace.
"""

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


def rgb_to_lab(rgb01):
    """float RGB in [0, 1] (..., 3) -> Lab (..., 3), L in [0, 100]."""
    linear = srgb_to_linear(ops.clip(rgb01, 0.0, 1.0))
    xyz = ops.matmul(linear, ops.convert_to_tensor(_RGB_TO_XYZN))
    f = _f(xyz)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], -1)


def lab_to_linear(lab):
    """Lab (..., 3) -> linear RGB (..., 3), not clipped (outside [0, 1]: out of gamut)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    xyz = ops.stack([_f_inverse(fy + lab[..., 1] / 500.0), _f_inverse(fy),
                     _f_inverse(fy - lab[..., 2] / 200.0)], -1)
    return ops.matmul(xyz, ops.convert_to_tensor(_XYZN_TO_RGB))


def lab_to_rgb(lab):
    """Lab -> float RGB in [0, 1], out-of-gamut colours clipped (colorspace.lab_to_rgb)."""
    return ops.clip(linear_to_srgb(ops.clip(lab_to_linear(lab), 0.0, 1.0)), 0.0, 1.0)


def _fits(linear):
    inside = (linear >= -FIT_TOLERANCE) & (linear <= 1.0 + FIT_TOLERANCE)
    return ops.all(inside, axis=-1)


def fit_chroma(lab):
    """Lab with each out-of-gamut colour's a and b scaled down (fixed L and hue) by
    the largest factor in [0, 1] that fits, found by bisection to 2^-FIT_STEPS:
    colorspace.fit_chroma_to_gamut, for every pixel at once."""
    ab = lab[..., 1:]
    light = lab[..., :1]

    def scaled(s):
        return ops.concatenate([light, ab * ops.expand_dims(s, -1)], -1)

    fits_now = _fits(lab_to_linear(lab))
    lo = ops.zeros_like(lab[..., 0])
    hi = ops.ones_like(lab[..., 0])
    for _ in range(FIT_STEPS):
        mid = (lo + hi) / 2.0
        ok = _fits(lab_to_linear(scaled(mid)))
        lo, hi = ops.where(ok, mid, lo), ops.where(ok, hi, mid)
    return scaled(ops.where(fits_now, ops.ones_like(lo), lo))


def lab_to_rgb8(lab):
    """Lab -> uint8 RGB with chroma fitted into the gamut (colorspace.lab_to_rgb8)."""
    linear = ops.clip(lab_to_linear(fit_chroma(lab)), 0.0, 1.0)
    rgb = ops.clip(linear_to_srgb(linear), 0.0, 1.0)
    return ops.cast(ops.floor(rgb * 255.0 + 0.5), "uint8")


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
