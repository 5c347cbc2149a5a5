"""Per-pixel colour histograms of Larsson, Maire and Shakhnarovich 2016 (Learning
Representations for Automatic Colorization): the bins, the targets, the
KL-divergence losses and the decoding rules.

Two output spaces, K = 32 bins per axis, predicted as two marginal histograms
(a softmax over each half of the 2K logits):

* "lab_hist": the a and b axes of Lab, binned at evenly spaced quantiles of a
  Gaussian with mu = 0, sigma = 25 (fine bins near gray, where most pixels are,
  wide ones for saturated colours). Decoded by the expectation over the bin
  centres (the paper's best rule for Lab).
* "hue_chroma_hist": hue and chroma, both in [0, 1] on K even bins; the hue
  loss of a pixel is weighted by its chroma (hue is meaningless for grays),
  lambda_H = 5. Chroma is decoded by the median of its histogram (linear
  inside the bin where the cumulative sum crosses 1/2), hue by the angle of
  the complex expectation z = sum_k p_k exp(2 pi i h_k), and the chroma faded
  by min(|z| / eta, 1), eta = 0.03, when the hue distribution is too spread to
  name a hue ("chromatic fading").

Hue and chroma are those of the ab plane (CIE LCh: chroma = |ab| / CHROMA_MAX,
hue = atan2(b, a) / 2 pi), so lightness stays the L channel the network reads
and ab is recovered exactly. Larsson et al. take hue and chroma from their HSV
bicone over RGB instead; the ab plane is the same kind of cylinder, with chroma
going to 0 at black and white where hue is unstable.

The targets are one-hot (the paper's R = 1: the histogram of a 1 x 1 region),
so the KL divergence D(y || p) = sum y log(y / p) is -log p of the pixel's bin.
Losses use keras.ops (model code); the decoding is NumPy (post-processing).
"""

from statistics import NormalDist

import keras
import numpy as np
from keras import ops

from colorization.seam import OutputSpace

BINS = 32  # K, per axis
GAUSS_MU, GAUSS_SIGMA = 0.0, 25.0  # Lab bins: quantiles of N(0, 25^2)
HUE_WEIGHT = 5.0  # lambda_H
FADING_ETA = 0.03  # eta of chromatic fading
# The largest chroma |ab| of an sRGB colour (blue, L 32: a 79, b -108); chroma
# is divided by it to lie in [0, 1] and clipped there.
CHROMA_MAX = 134.0
MODES = {"lab": "lab_hist", "hue_chroma": "hue_chroma_hist"}  # mode -> output name


# ---------------------------------------------------------------- bins


def gaussian_quantile_edges(bins=BINS, mu=GAUSS_MU, sigma=GAUSS_SIGMA):
    """The bins - 1 inner edges mu + sigma * Phi^-1(k / bins), k = 1 .. bins-1
    (the outer bins reach to -inf and +inf): each bin holds 1/bins of the Gaussian."""
    dist = NormalDist(mu, sigma)
    return np.array([dist.inv_cdf(k / bins) for k in range(1, bins)], np.float32)


def gaussian_quantile_centres(bins=BINS, mu=GAUSS_MU, sigma=GAUSS_SIGMA):
    """Bin k's representative value: the Gaussian's quantile (k + 1/2) / bins, the
    median of the Gaussian's mass inside the bin (finite for the outer bins too)."""
    dist = NormalDist(mu, sigma)
    return np.array([dist.inv_cdf((k + 0.5) / bins) for k in range(bins)], np.float32)


def uniform_centres(bins=BINS):
    """Centres (k + 1/2) / bins of the even bins of [0, 1] (hue and chroma)."""
    return ((np.arange(bins) + 0.5) / bins).astype(np.float32)


def hue_chroma(ab):
    """ab (..., 2) -> (hue in [0, 1), chroma / CHROMA_MAX clipped to [0, 1]) (keras.ops)."""
    a, b = ab[..., 0], ab[..., 1]
    hue = ops.arctan2(b, a) / (2.0 * np.pi)
    hue = hue - ops.floor(hue)  # [-1/2, 1/2) -> [0, 1)
    chroma = ops.clip(ops.sqrt(a * a + b * b) / CHROMA_MAX, 0.0, 1.0)
    return hue, chroma


def bin_indices(ab, mode, bins=BINS):
    """ab (..., 2) in ab units -> int32 bin indices (..., 2) of the pixel's colour:
    (a bin, b bin) for "lab", (hue bin, chroma bin) for "hue_chroma"."""
    ab = ops.convert_to_tensor(ab, "float32")
    if mode == "lab":
        edges = ops.convert_to_tensor(gaussian_quantile_edges(bins))
        # The number of inner edges at or below the value is its bin.
        return ops.sum(ops.cast(ab[..., None] >= edges, "int32"), -1)
    if mode != "hue_chroma":
        raise ValueError(f"unknown histogram mode {mode!r} (lab or hue_chroma)")
    hue, chroma = hue_chroma(ab)
    h = ops.cast(ops.floor(hue * bins), "int32") % bins
    c = ops.minimum(ops.cast(ops.floor(chroma * bins), "int32"), bins - 1)
    return ops.stack([h, c], -1)


def histogram_targets(ab, mode, bins=BINS):
    """The dense targets (..., 2 * bins): two one-hot histograms (R = 1), each
    summing to 1; the layout of the network's logits."""
    idx = bin_indices(ab, mode, bins)
    return ops.concatenate([ops.one_hot(idx[..., 0], bins), ops.one_hot(idx[..., 1], bins)], -1)


# ---------------------------------------------------------------- loss


@keras.saving.register_keras_serializable(package="colorization")
class HistogramKL(keras.losses.Loss):
    """KL divergence between the one-hot target histograms and the predicted ones.

    y_true: ab01 (B, h, w, 2), read_input's target at the output's resolution;
    y_pred: logits (B, h, w, 2K), a softmax over each half.
      "lab":        D(y_a || p_a) + D(y_b || p_b)
      "hue_chroma": D(y_C || p_C) + lambda_H * chroma * D(y_H || p_H)
    averaged over the pixels of each image.
    """

    def __init__(self, mode="lab", bins=BINS, hue_weight=HUE_WEIGHT, name=None, **kwargs):
        super().__init__(name=name or f"{mode}_kl", **kwargs)
        if mode not in MODES:
            raise ValueError(f"unknown histogram mode {mode!r} (lab or hue_chroma)")
        self.mode, self.bins, self.hue_weight = mode, int(bins), float(hue_weight)

    def call(self, y_true, y_pred):
        ab = ops.cast(y_true, "float32") * 255.0 - 128.0
        idx = bin_indices(ab, self.mode, self.bins)
        logits = ops.cast(y_pred, "float32")
        k = self.bins
        first = -ops.take_along_axis(ops.log_softmax(logits[..., :k], axis=-1),
                                     idx[..., :1], axis=-1)[..., 0]
        second = -ops.take_along_axis(ops.log_softmax(logits[..., k:], axis=-1),
                                      idx[..., 1:], axis=-1)[..., 0]
        if self.mode == "lab":
            kl = first + second
        else:  # first: hue, second: chroma
            _, chroma = hue_chroma(ab)
            kl = second + self.hue_weight * chroma * first
        return ops.mean(kl, axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "bins": self.bins,
                "hue_weight": self.hue_weight}


# ---------------------------------------------------------------- decoding (NumPy)


def softmax(logits):
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def expectation(p, centres):
    """Sum_k p_k c_k over the last axis."""
    return np.asarray(p, np.float64) @ np.asarray(centres, np.float64)


def histogram_median(p):
    """The median in [0, 1] of histograms p (..., K) on K even bins of [0, 1],
    the density uniform inside each bin: the bin where the cumulative sum reaches
    1/2, and the linear interpolation inside it."""
    p = np.asarray(p, np.float64)
    k_bins = p.shape[-1]
    cdf = np.cumsum(p, -1)
    k = np.minimum((cdf < 0.5).sum(-1), k_bins - 1)
    p_k = np.take_along_axis(p, k[..., None], -1)[..., 0]
    before = np.take_along_axis(cdf, k[..., None], -1)[..., 0] - p_k
    inside = np.where(p_k > 0, (0.5 - before) / np.maximum(p_k, 1e-300), 0.5)
    return (k + np.clip(inside, 0.0, 1.0)) / k_bins


def complex_mean(p, centres=None):
    """z = sum_k p_k exp(2 pi i h_k) of hue histograms p (..., K): its angle is the
    circular mean hue, its modulus (<= 1) how concentrated the hue is."""
    h = uniform_centres(np.shape(p)[-1]) if centres is None else centres
    return np.asarray(p, np.float64) @ np.exp(2j * np.pi * np.asarray(h, np.float64))


def chromatic_fading(z, eta=FADING_ETA):
    """The factor min(|z| / eta, 1) applied to the predicted chroma. (The paper
    prints max(eta^-1 |z|, 1), which is never below 1 and so would not fade;
    the authors' code clips |z| / eta at 1, which is what is meant.)"""
    return np.minimum(np.abs(z) / eta, 1.0)


def decode_ab(logits, mode, bins=BINS):
    """Logits (..., 2K) -> ab (..., 2) in ab units, by the paper's rules."""
    logits = np.asarray(logits)
    first, second = softmax(logits[..., :bins]), softmax(logits[..., bins:])
    if mode == "lab":
        centres = gaussian_quantile_centres(bins)
        return np.stack([expectation(first, centres), expectation(second, centres)],
                        -1).astype(np.float32)
    z = complex_mean(first)
    chroma = histogram_median(second) * chromatic_fading(z) * CHROMA_MAX
    hue = np.angle(z)
    return np.stack([chroma * np.cos(hue), chroma * np.sin(hue)], -1).astype(np.float32)


def decode_ab_graph(logits, mode, bins=BINS):
    """decode_ab as graph operations (keras.ops, float32): an exported model's decoding."""
    logits = ops.cast(logits, "float32")
    first = ops.softmax(logits[..., :bins], axis=-1)
    second = ops.softmax(logits[..., bins:], axis=-1)
    if mode == "lab":
        centres = ops.convert_to_tensor(gaussian_quantile_centres(bins))
        return ops.stack([ops.matmul(first, centres), ops.matmul(second, centres)], -1)
    angles = 2.0 * np.pi * uniform_centres(bins)
    real = ops.matmul(first, ops.convert_to_tensor(np.cos(angles).astype(np.float32)))
    imag = ops.matmul(first, ops.convert_to_tensor(np.sin(angles).astype(np.float32)))
    fading = ops.minimum(ops.sqrt(real * real + imag * imag) / FADING_ETA, 1.0)
    # histogram_median: the bin where the cumulative sum reaches 1/2, then linear inside.
    cdf = ops.cumsum(second, axis=-1)
    k = ops.minimum(ops.sum(ops.cast(cdf < 0.5, "int32"), -1), bins - 1)
    p_k = ops.take_along_axis(second, k[..., None], -1)[..., 0]
    before = ops.take_along_axis(cdf, k[..., None], -1)[..., 0] - p_k
    inside = ops.where(p_k > 0, (0.5 - before) / ops.maximum(p_k, 1e-30), 0.5)
    median = (ops.cast(k, "float32") + ops.clip(inside, 0.0, 1.0)) / bins
    chroma = median * fading * CHROMA_MAX
    hue = ops.arctan2(imag, real)
    return ops.stack([chroma * ops.cos(hue), chroma * ops.sin(hue)], -1)


# ---------------------------------------------------------------- the output spaces


class Histograms(OutputSpace):
    """Larsson et al.'s per-pixel histograms: 2K logits, two marginals, trained by
    KL divergence, decoded by the paper's rules for the mode."""

    activation = None

    def __init__(self, mode, title):
        self.mode, self.name, self.title = mode, MODES[mode], title

    def channels(self):
        return 2 * BINS

    def loss(self, summary=None):
        del summary
        return HistogramKL(self.mode)

    def decode(self, value, temperature=None, gray=None):
        del temperature, gray
        from colorization.colorspace import ab_to_model

        return ab_to_model(decode_ab(ops.convert_to_numpy(value), self.mode))

    def decode_graph(self, value, temperature=None, gray=None):
        del temperature, gray
        return (decode_ab_graph(value, self.mode) + 128.0) / 255.0

    def check(self, model):
        units = int(model.output[self.name].shape[-1])
        if units != self.channels():
            return (f"the model predicts {units} histogram logits; histograms.py has "
                    f"2 x {BINS}")
        return None


LAB_HIST = Histograms("lab", "Lab marginal histograms (2 x 32 bins)")
HUE_CHROMA_HIST = Histograms("hue_chroma", "hue and chroma histograms (2 x 32 bins)")
