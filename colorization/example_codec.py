"""Turning one source (a photo or a synthetic scene) into a stored example.

This is the per-image work of input_create.py, kept free of TensorFlow so that
worker processes start fast and never inherit TensorFlow's threads. It returns
an `Encoded` result: the lossless PNG of the 8-bit Lab image plus the numbers the
dataset summary needs, or the reason the source was skipped.
"""

import functools
import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from colorization.colorspace import rgb8_to_lab8, rgb_to_lab8
from colorization.image_io import (
    ImageError,
    load_pixels,
    resize_short_side_and_center_crop,
    to_float,
)

# The colour prior is a histogram of ab on a grid of 10 (Zhang et al.'s grid),
# bins centred on multiples of 10 from -130 to 130 so every 8-bit ab value falls in.
AB_BIN_SIZE = 10
AB_BIN_CENTERS = np.arange(-130, 131, AB_BIN_SIZE)
# PNG settings measured on 256x256 Lab photos (skimage's samples) and scenes:
# zlib level 1 with the RLE strategy and the fast filters (none/sub/up) gave
# 88 KB per photo, 4.2 ms to encode and 1.5x faster tf.io.decode_png than
# OpenCV's defaults (Paeth filter, level 3: 100 KB, 12 ms). Decoding is the
# reader's bottleneck, so cheap filters matter more than a few percent of size.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FAST_FILTERS]


CROP_MARK = "#crop"
# Sources with more pixels are skipped before decoding (a decompression bomb would
# take every worker's memory): the default --max-pixels of model_transform.py.
MAX_SOURCE_PIXELS = 500_000_000


@dataclass
class Source:
    """A photo on disk (path) or a synthetic scene (seed, index)."""
    relpath: str
    label: int = -1
    path: str | None = None
    seed: int | None = None
    index: int | None = None
    reason: str | None = None  # already known to be unusable (e.g. a directory)
    # Random crop `crop` of up to `crops` (input_create.py --crops-per-image); None:
    # the whole photo, centre-cropped. relpath then names the crop ("a.jpg#crop03")
    # and `group` the photo, which decides the split.
    crop: int | None = None
    crops: int = 1
    crop_seed: int = 0
    crop_min_scale: float = 0.3

    @property
    def group(self):
        return self.relpath.split(CROP_MARK, 1)[0]


@dataclass
class Encoded:
    relpath: str
    label: int
    png: bytes | None = None
    size: tuple[int, int] | None = None
    ab_hist: np.ndarray | None = None
    reason: str | None = None
    dropped: bool = False  # a crop the photo is too small to give: nothing stored


def colour_prior(summary):
    """(counts (n, n), grid centres (n,)) of the training split's ab histogram that
    dataset.json records: the colour prior, read in this one place."""
    hist = summary["ab_histogram"]
    if isinstance(hist, dict):
        return (np.asarray(hist["counts"], np.float64),
                np.asarray(hist.get("centers", AB_BIN_CENTERS), np.float64))
    return np.asarray(hist, np.float64), AB_BIN_CENTERS.astype(np.float64)


# Every lab8 pixel's (a, b) byte pair indexes these 65536-entry tables: its bin on
# the AB_BIN_CENTERS grid and its chroma. One bincount over the pixels then gives
# both the histogram and the mean chroma, without a float Lab image.
_AB8 = np.arange(256, dtype=np.float64) - 128.0   # lab8 byte -> a or b
_BIN8 = np.clip(np.rint((_AB8 - AB_BIN_CENTERS[0]) / AB_BIN_SIZE), 0,
                len(AB_BIN_CENTERS) - 1).astype(np.int64)
_BIN_OF_AB16 = (_BIN8[:, None] * len(AB_BIN_CENTERS) + _BIN8[None, :]).ravel()
_CHROMA_OF_AB16 = np.hypot(_AB8[:, None], _AB8[None, :]).ravel()


def ab_counts(lab8):
    """How many pixels have each (a, b) byte pair: shape (65536,), index a * 256 + b."""
    ab16 = (lab8[..., 1].astype(np.int32) << 8) | lab8[..., 2]
    return np.bincount(ab16.ravel(), minlength=256 * 256)


def ab_histogram(lab8, counts=None):
    """Counts of the pixels' ab values on the AB_BIN_CENTERS grid, shape (27, 27)."""
    counts = ab_counts(lab8) if counts is None else counts
    n = len(AB_BIN_CENTERS)
    return np.bincount(_BIN_OF_AB16, weights=counts, minlength=n * n).astype(
        np.int64).reshape(n, n)


def mean_chroma(lab8, counts=None):
    """Mean of sqrt(a^2 + b^2) over the pixels."""
    counts = ab_counts(lab8) if counts is None else counts
    # einsum's own loop, not `@`: BLAS's threads spin after each call, and in the
    # builder's worker processes they took the other workers' cores (measured: 2
    # workers built 140 photos/s together where one alone built 220).
    return float(np.einsum("i,i->", counts, _CHROMA_OF_AB16) / max(counts.sum(), 1))


def encode_lab8(lab8):
    """lab8 -> PNG bytes whose channels 0, 1, 2 are L, a, b (as tf.io.decode_png reads them)."""
    # OpenCV writes its arrays as BGR, so hand it the channels reversed.
    ok, buf = cv2.imencode(".png", cv2.cvtColor(lab8, cv2.COLOR_RGB2BGR), PNG_PARAMS)
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def decode_lab8(png):
    """The inverse of encode_lab8, for NumPy-side readers and tests."""
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]


@functools.lru_cache(maxsize=1)
def _photo_pixels(path):
    # The crops of one photo are neighbours in a shard and reach the same worker
    # in one chunk: the last photo is decoded once for all of them.
    return load_pixels(path, max_pixels=MAX_SOURCE_PIXELS)[0]


def source_rgb(source, stored_size):
    """(RGB, label): uint8 or uint16 for photos as decoded, float for synthetic scenes,
    which carry their own class."""
    if source.seed is not None:
        from colorization.scenes import render_scene
        return render_scene(source.seed, source.index, stored_size)
    pixels = _photo_pixels(source.path) if source.crop is not None else load_pixels(
        source.path, max_pixels=MAX_SOURCE_PIXELS)[0]
    return pixels, source.label


def crops_for(short_side, stored_size, most):
    """How many distinct crops a photo gives: one per stored_size**2 of its short
    side's square, at most `most` (a 320x213 photo gives 1, a 5120x2880 one many)."""
    return int(min(most, max(1, (short_side / stored_size) ** 2)))


def random_crop(rgb, source, stored_size):
    """Crop `source.crop` of the photo: 0 is the whole centred square; the others a
    square of random side (from crop_min_scale of the short side, never under
    stored_size where the photo allows, to all of it) at a random place, the same
    for the same photo path, crop and seed on every machine."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    if source.crop == 0:
        return rgb
    key = int.from_bytes(hashlib.sha1(source.group.encode("utf-8", "surrogateescape")).digest()[:4],
                         "little")
    rng = np.random.default_rng([source.crop_seed, key, source.crop])
    low = min(short, max(stored_size, round(source.crop_min_scale * short)))
    side = int(rng.integers(low, short + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return rgb[top:top + side, left:left + side]


def encode_source(source, stored_size=256, min_side=64, min_chroma=3.0):
    """One source -> Encoded; never raises for a bad source, it records the reason."""
    label = source.label
    try:
        if source.reason:
            raise ImageError(source.reason)
        rgb, label = source_rgb(source, stored_size)
        h, w = rgb.shape[:2]
        if min(h, w) < min_side:
            raise ImageError(f"too small: {w}x{h} (short side under {min_side} px)")
        if source.crop is not None:
            if source.crop >= crops_for(min(h, w), stored_size, source.crops):
                return Encoded(source.relpath, label, dropped=True)
            rgb = random_crop(rgb, source, stored_size)
        # 8-bit photos are resized as bytes and converted by table lookup (the
        # fast path); 16-bit photos and rendered scenes go through float.
        small = resize_short_side_and_center_crop(rgb, stored_size)
        # Resizing treats the channels alike, so a gray photo is still gray here,
        # where the check reads 3x fewer pixels.
        if np.array_equal(small[..., 0], small[..., 1]) and np.array_equal(small[..., 1],
                                                                          small[..., 2]):
            raise ImageError("grayscale image (no colour to learn from)")
        lab8 = rgb8_to_lab8(small) if small.dtype == np.uint8 else rgb_to_lab8(to_float(small))
        counts = ab_counts(lab8)
        chroma = mean_chroma(lab8, counts)
        if chroma < min_chroma:
            raise ImageError(f"near-gray: mean chroma {chroma:.2f} < {min_chroma:g}")
        return Encoded(source.relpath, label, png=encode_lab8(lab8),
                       size=lab8.shape[:2], ab_hist=ab_histogram(lab8, counts))
    except ImageError as e:
        return Encoded(source.relpath, source.label, reason=str(e))
    except (cv2.error, ValueError, MemoryError) as e:
        return Encoded(source.relpath, source.label, reason=f"decoding failed: {e}".strip())
