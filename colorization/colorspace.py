"""sRGB <-> CIE L*a*b* (D65) conversions: the one implementation every script uses.

Conventions
-----------
* float RGB: float32 in [0, 1], channels in R, G, B order, sRGB gamma-encoded.
* float Lab: L in [0, 100], a and b roughly in [-128, 127].
* 8-bit Lab ("lab8", OpenCV's convention, what the dataset stores):
  L * 255 / 100, a + 128, b + 128, rounded and clipped to uint8.
* model scale: the network reads L / 100 and predicts (ab + 128) / 255, both in
  [0, 1]. For lab8 data that is simply lab8 / 255 for every channel, which is why
  the tf.data reader only divides by 255 (see ``LAB8_TO_MODEL``).

The formulas are the CIE / sRGB (IEC 61966-2-1) definitions with the D65 white
point, as in scikit-image, which tests/test_colorspace.py uses as the reference.
They are written in float32 NumPy: on a 256x256 image this is faster than
OpenCV's float path and about 100x more accurate in dark colours.
"""

import numpy as np

# lab8 / 255 gives both L / 100 and (ab + 128) / 255: the model's input and target.
LAB8_TO_MODEL = 1.0 / 255.0

_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], np.float32)
_WHITE_D65 = np.array([0.950456, 1.0, 1.088754], np.float32)
# Normalising by the white point is folded into the matrices.
_RGB_TO_XYZN = (_RGB_TO_XYZ / _WHITE_D65[:, None]).T
_XYZN_TO_RGB = np.linalg.inv(_RGB_TO_XYZ / _WHITE_D65[:, None]).T.astype(np.float32)
_EPSILON = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0
KAPPA = _KAPPA  # CIE's 24389/27, also used by layers.LightnessToLuma


def rgb_to_lab(rgb):
    """float RGB in [0, 1] -> float Lab (L in [0, 100]), any leading shape."""
    rgb = np.clip(np.asarray(rgb, np.float32), 0.0, 1.0)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _RGB_TO_XYZN
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_rgb(lab):
    """float Lab -> float RGB in [0, 1]; out-of-gamut colours are clipped."""
    linear = np.clip(_lab_to_linear(np.asarray(lab, np.float32)), 0.0, 1.0)
    return np.clip(linear_to_srgb(linear), 0.0, 1.0).astype(np.float32)


def _f_inverse(f):
    """The inverse of the CIE companding f: t^3 above 6/29, linear below."""
    return np.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / _KAPPA)


def _linear_planes(lab):
    """float Lab (..., 3) -> linear RGB as planes (3, ...), not clipped (outside
    [0, 1] means out of gamut).

    Computed plane by plane rather than as a matrix product over interleaved
    pixels, and kept planar for the gamut test: measured 2-3x faster on 1 MP.
    """
    fy = (lab[..., 0] + 16.0) / 116.0
    xyz = (_f_inverse(fy + lab[..., 1] / 500.0), _f_inverse(fy),
           _f_inverse(fy - lab[..., 2] / 200.0))
    m = _XYZN_TO_RGB  # linear = xyz @ m
    return np.stack([xyz[0] * m[0, c] + xyz[1] * m[1, c] + xyz[2] * m[2, c] for c in range(3)])


def _lab_to_linear(lab):
    return np.moveaxis(_linear_planes(lab), 0, -1)


def _fit_chroma(lab, steps=10, tolerance=1e-4, copy=True):
    """(lab with out-of-gamut chroma reduced at fixed L and hue, its linear RGB planes)."""
    lab = np.array(lab, np.float32, copy=copy)
    planes = _linear_planes(lab)

    def fits(p):
        ok = (p[0] >= -tolerance) & (p[0] <= 1.0 + tolerance)
        for c in (1, 2):
            ok &= (p[c] >= -tolerance) & (p[c] <= 1.0 + tolerance)
        return ok

    bad = ~fits(planes)
    if bad.any():
        sub = lab[bad]
        lo, hi = np.zeros(len(sub), np.float32), np.ones(len(sub), np.float32)
        for _ in range(steps):
            mid = (lo + hi) / 2
            trial = sub.copy()
            trial[:, 1:] *= mid[:, None]
            ok = fits(_linear_planes(trial))
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        sub[:, 1:] *= lo[:, None]
        lab[bad] = sub
        planes[:, bad] = _linear_planes(sub)
    return lab, np.clip(planes, 0.0, 1.0, out=planes)


def fit_chroma_to_gamut(lab, steps=10, tolerance=1e-4):
    """Lab whose out-of-gamut colours have their chroma reduced until they fit.

    Clipping RGB would change a predicted colour's lightness (and hue); scaling
    a and b down at fixed L keeps the photo's own L, which is what a colorization
    must return. Gray (a = b = 0) is always in gamut, so a bisection on the scale
    in [0, 1] finds the largest that fits, to 2^-steps.
    """
    return _fit_chroma(lab, steps, tolerance)[0]


def linear_to_srgb(linear):
    """Linear RGB in [0, 1] -> sRGB gamma-encoded float."""
    return np.where(linear > 0.0031308, 1.055 * linear ** (1.0 / 2.4) - 0.055, 12.92 * linear)


# uint8 output needs the gamma curve only to 1/255: a table over 2^16 levels of
# linear light is exact to within one rounding step and replaces a pow per value.
_SRGB8_OF_LINEAR16 = np.clip(np.rint(linear_to_srgb(np.linspace(0.0, 1.0, 65536)) * 255.0),
                             0, 255).astype(np.uint8)


def lab_to_rgb8(lab):
    """float32 Lab -> uint8 RGB with chroma fitted into the gamut at fixed L: the
    output path of a colorization (same L as the photo, no clipping artefacts).
    Out-of-gamut a, b of the argument are reduced in place (no copy of 12 MB/MP)."""
    planes = _fit_chroma(lab, copy=False)[1]  # may change lab's a and b in place
    out = np.empty(planes.shape[1:] + (3,), np.uint8)
    for c in range(3):
        out[..., c] = _SRGB8_OF_LINEAR16[np.rint(planes[c] * 65535.0).astype(np.int32)]
    return out


_LINEAR_OF_8BIT = np.where(np.arange(256) / 255.0 > 0.04045,
                           ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
                           np.arange(256) / 255.0 / 12.92).astype(np.float32)


def rgb8_to_l(rgb8):
    """uint8 RGB -> L in [0, 100], the lightness part of rgb_to_lab without a and b
    (only Y is needed: three table lookups per pixel)."""
    w = _RGB_TO_XYZN[:, 1]  # the Y row; the white's Y is 1
    y = (_LINEAR_OF_8BIT[rgb8[..., 0]] * w[0] + _LINEAR_OF_8BIT[rgb8[..., 1]] * w[1]
         + _LINEAR_OF_8BIT[rgb8[..., 2]] * w[2])
    f = np.where(y > _EPSILON, np.cbrt(y), (_KAPPA * y + 16.0) / 116.0)
    return 116.0 * f - 16.0


def lab_to_lab8(lab):
    """float Lab -> uint8 Lab in OpenCV's 8-bit convention."""
    lab = np.asarray(lab, dtype=np.float32)
    scaled = np.empty_like(lab)
    scaled[..., 0] = lab[..., 0] * (255.0 / 100.0)
    scaled[..., 1:] = lab[..., 1:] + 128.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def lab8_to_lab(lab8):
    """uint8 Lab (OpenCV convention) -> float Lab."""
    lab8 = np.asarray(lab8, dtype=np.float32)
    lab = np.empty_like(lab8)
    lab[..., 0] = lab8[..., 0] * (100.0 / 255.0)
    lab[..., 1:] = lab8[..., 1:] - 128.0
    return lab


def rgb_to_lab8(rgb):
    return lab_to_lab8(rgb_to_lab(rgb))


# 8-bit RGB has only 2^24 colours, so for a stream of 8-bit photos (the dataset
# builder) the conversion is a table lookup: rgb_to_lab8 evaluated once on every
# colour, packed as uint32 (64 MiB), then one gather per pixel, measured 12x faster
# than the float formulas on a 256x256 image. Building the table costs about as
# much as converting 250 such images, so a process only builds it after that many
# conversions; before, the formulas give the identical answer.
TABLE_AFTER_PIXELS = 250 * 256 * 256
_table = None
_pixels_converted = 0


def _rgb8_table():
    """rgb_to_lab8 of every 8-bit colour, index (r << 16 | g << 8 | b) -> packed uint32."""
    table = np.zeros((256, 256 * 256, 4), np.uint8)
    g, b = np.meshgrid(np.arange(256, dtype=np.float32), np.arange(256, dtype=np.float32),
                       indexing="ij")
    rgb = np.stack([np.zeros_like(g), g, b], -1).reshape(-1, 3) / 255.0
    for r in range(256):  # 256 slices keep the float temporaries small
        rgb[:, 0] = r / 255.0
        table[r, :, :3] = rgb_to_lab8(rgb)
    return table.view(np.uint32).reshape(-1)


def build_rgb8_table():
    """Builds this process's table now (a worker that knows many photos are coming)."""
    global _table
    if _table is None:
        _table = _rgb8_table()


def rgb8_to_lab8(rgb8, use_table=None):
    """uint8 RGB (..., 3) -> lab8, exactly rgb_to_lab8(rgb8 / 255), fast for many images."""
    global _pixels_converted
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8:
        raise TypeError(f"rgb8_to_lab8 needs uint8 input, got {rgb8.dtype}")
    if use_table is None:
        _pixels_converted += rgb8.size // 3
        use_table = _table is not None or _pixels_converted > TABLE_AFTER_PIXELS
    if not use_table:
        return rgb_to_lab8(rgb8.astype(np.float32) / 255.0)
    build_rgb8_table()
    index = ((rgb8[..., 0].astype(np.int32) << 16) | (rgb8[..., 1].astype(np.int32) << 8)
             | rgb8[..., 2])
    packed = np.take(_table, index)
    return packed.view(np.uint8).reshape(*rgb8.shape[:-1], 4)[..., :3].copy()


def lab8_to_rgb(lab8):
    return lab_to_rgb(lab8_to_lab(lab8))


def ab_to_model(ab):
    """float ab -> the network's output scale (ab + 128) / 255."""
    return (np.asarray(ab, np.float32) + 128.0) / 255.0


def model_to_ab(ab01):
    """The network's output scale -> float ab."""
    return np.asarray(ab01, np.float32) * 255.0 - 128.0


def saturate_ab01(ab01, saturation):
    """ab01 with its chroma scaled by `saturation` about gray (ab = 0): 0 gives gray,
    1 the values themselves, 2 twice the chroma (model_transform.py --saturation).
    Kept in [0, 1]; the photo's gamut is fitted later, at fixed L."""
    if saturation == 1.0:
        return ab01
    ab = model_to_ab(ab01) * np.float32(saturation)
    return np.clip(ab_to_model(ab), 0.0, 1.0)


def join_lab(l_channel, ab):
    """Concatenates L (..., 1) in [0, 100] with ab (..., 2) into float Lab."""
    return np.concatenate([np.asarray(l_channel, np.float32), np.asarray(ab, np.float32)], -1)


def to_uint8(rgb):
    """float RGB in [0, 1] -> uint8, rounded."""
    return np.clip(np.rint(np.asarray(rgb, np.float32) * 255.0), 0, 255).astype(np.uint8)


def compose_rgb(l01, ab01):
    """Network scale L (H, W[, 1]) and ab (h, w, 2), any h x w -> float RGB (H, W, 3).

    The ab map is upsampled bilinearly to L's size: chroma is low-frequency, so
    predicting it at a reduced resolution and joining it with the full-resolution
    L keeps all of the photo's detail.
    """
    import cv2

    l01 = np.asarray(l01, np.float32)
    l01 = l01[..., 0] if l01.ndim == 3 else l01
    ab01 = np.asarray(ab01, np.float32)
    if ab01.shape[:2] != l01.shape:
        ab01 = cv2.resize(ab01, (l01.shape[1], l01.shape[0]), interpolation=cv2.INTER_LINEAR)
    return lab_to_rgb(fit_chroma_to_gamut(join_lab(l01[..., None] * 100.0, model_to_ab(ab01))))


# ---------------------------------------------------------------- YUV (Varga & Szirányi)

# The YUV of Varga & Szirányi 2016 (JPEG's full-range YCbCr, BT.601 weights) on
# 8-bit RGB: Y in [0, 255], U and V centred on 128.
_RGB_TO_YUV = np.array([[0.299000, 0.587000, 0.114000],
                        [-0.168736, -0.331264, 0.500000],
                        [0.500000, -0.418688, -0.081312]], np.float64)
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV)
_YUV_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_yuv(rgb):
    """float RGB in [0, 1] -> YUV in 8-bit units (Y 0-255, U and V 128 +- 127.5)."""
    rgb = np.asarray(rgb, np.float32) * 255.0
    return (rgb @ _RGB_TO_YUV.T.astype(np.float32) + _YUV_OFFSET.astype(np.float32))


def yuv_to_rgb(yuv):
    """YUV in 8-bit units -> float RGB in [0, 1], clipped (the inverse of rgb_to_yuv)."""
    rgb = (np.asarray(yuv, np.float32) - _YUV_OFFSET.astype(np.float32)) \
        @ _YUV_TO_RGB.T.astype(np.float32)
    return np.clip(rgb / 255.0, 0.0, 1.0)


def lab8_to_uv01(lab8):
    """Stored lab8 -> U and V / 255 (..., 2) in [0, 1]: Varga's regression target."""
    return (rgb_to_yuv(lab8_to_rgb(lab8))[..., 1:] / 255.0).astype(np.float32)


def ab_from_uv(l_channel, uv):
    """L in [0, 100] (...) and predicted U, V in 8-bit units (..., 2) -> ab (..., 2).

    The luma Y is that of the gray the network was given (R = G = B with this L),
    and the colour Y + UV is converted back to Lab through RGB; the pipeline then
    keeps the photo's own L and takes only the ab from it.
    """
    l_channel = np.asarray(l_channel, np.float32)
    gray = lab_to_rgb(np.stack([l_channel, np.zeros_like(l_channel),
                                np.zeros_like(l_channel)], -1))[..., 0]
    yuv = np.concatenate([gray[..., None] * 255.0, np.asarray(uv, np.float32)], -1)
    return rgb_to_lab(yuv_to_rgb(yuv))[..., 1:]
