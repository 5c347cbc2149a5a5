"""The quantized ab output space of Zhang et al. 2016 (Colorful Image Colorization):
the in-gamut bins, soft-encoded targets, class rebalancing and annealed-mean decoding.

    python -m colorization.ab_bins --regenerate   # rewrites resources/ab_gamut_bins.txt
    python -m colorization.ab_bins                # checks the file against a regeneration

The in-gamut set. ab is quantized on a grid of 10 (bin centres at multiples of
10). A bin is kept when its 10 x 10 cell holds the ab of some sRGB colour at some
lightness, i.e. when it is the nearest grid point of a colour a photo can hold;
then every in-gamut colour lies within half a cell diagonal (5 * sqrt 2) of a kept
centre. The colours tried are every 8-bit sRGB colour plus the six faces of the
RGB cube sampled 1024 x 1024 each (the edge of the ab gamut at every L comes from
the cube's faces), converted with colorspace.rgb_to_lab (D65). This gives
Q = 262 bins spanning a in [-90, 100] and b in [-110, 90]. Zhang et al. report
Q = 313 over the same a and b extents (their derivation is not in the paper); the
code reads Q from the file, so their set can be dropped in unchanged.

The losses and the decoding are written with keras.ops (model code); the prior
and the weights are NumPy, computed once from dataset.json's histogram.
"""

import argparse
import functools
import os
import sys

import keras
import numpy as np
from keras import ops

from colorization.example_codec import AB_BIN_SIZE, colour_prior
from colorization.seam import OutputSpace

# Zhang et al. quantize ab on the grid of 10 that the colour prior uses too.
GRID = float(AB_BIN_SIZE)
RESOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources",
                        "ab_gamut_bins.txt")
# The paper's constants (Zhang et al. 2016, section 2.1-2.3).
SOFT_NEIGHBOURS = 5  # soft encoding: the 5 nearest bins ...
SOFT_SIGMA = 5.0  # ... weighted by a Gaussian kernel of sigma 5 (ab units)
PRIOR_SIGMA = 5.0  # the colour prior is smoothed by a Gaussian of sigma 5
REBALANCE_MIX = 0.5  # lambda: the smoothed prior is mixed with uniform
TEMPERATURE = 0.38  # annealed mean


# ---------------------------------------------------------------- the bins


def derive_gamut_bins(face_samples=1024):
    """(Q, 2) float32 centres of the in-gamut bins, sorted by (a, b); see the module doc."""
    from colorization.colorspace import rgb_to_lab

    # A cell (i, j) of the grid as one integer, (i + 64) * 256 + (j + 64), which sorts
    # as (a, b) does: np.unique on integers is ~40x faster than on rows (axis=0).
    def cells(rgb):
        ij = np.rint(rgb_to_lab(rgb)[:, 1:] / GRID).astype(np.int64) + 64
        return np.unique(ij[:, 0] * 256 + ij[:, 1])

    found = []
    levels = np.arange(256, dtype=np.float32) / 255.0
    g, b = np.meshgrid(levels, levels, indexing="ij")
    for r in range(0, 256, 16):  # every 8-bit colour, 16 red levels at a time
        rr = np.repeat(levels[r:r + 16], g.size)
        rgb = np.stack([rr, np.tile(g.ravel(), 16), np.tile(b.ravel(), 16)], -1)
        found.append(cells(rgb))
    t = np.linspace(0.0, 1.0, face_samples, dtype=np.float32)
    u, v = (x.ravel() for x in np.meshgrid(t, t, indexing="ij"))
    for axis in range(3):
        for value in (0.0, 1.0):
            face = np.empty((u.size, 3), np.float32)
            face[:, axis] = value
            face[:, [k for k in range(3) if k != axis]] = np.stack([u, v], -1)
            found.append(cells(face))
    keys = np.unique(np.concatenate(found))
    return ((np.stack([keys // 256, keys % 256], -1) - 64) * GRID).astype(np.float32)


def write_gamut_bins(path=RESOURCE, centres=None):
    centres = derive_gamut_bins() if centres is None else centres
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = (f"In-gamut ab bins on a grid of {GRID:g}: Q = {len(centres)} centres (a b), one a "
              "line.\nRegenerate with `python -m colorization.ab_bins --regenerate`.")
    from colorization.atomic_io import replace_atomic

    replace_atomic(path, lambda tmp: np.savetxt(tmp, centres, fmt="%d", header=header))


@functools.lru_cache(maxsize=4)
def gamut_bins(path=RESOURCE):
    """(Q, 2) float32 bin centres in ab units, from the data file. Read once per
    process (decoding calls it for every batch); the array is read-only."""
    centres = np.loadtxt(path, dtype=np.float32, ndmin=2)
    centres.flags.writeable = False
    return centres


def nearest_bin(ab, centres):
    """Index of the nearest centre for each ab (..., 2) (NumPy)."""
    ab = np.asarray(ab, np.float32)
    d2 = ((ab[..., None, :] - centres) ** 2).sum(-1)
    return np.argmin(d2, -1)


# ---------------------------------------------------------------- prior and weights


def prior_on_bins(histogram, hist_centres, centres):
    """The empirical colour prior p on the Q bins (sums to 1).

    histogram: (n, n) counts on the grid hist_centres x hist_centres (dataset.json's
    ab_histogram); each grid cell's count goes to its nearest in-gamut bin (a cell
    can lie just outside the set when 8-bit rounding moved a colour over an edge).
    """
    hist = np.asarray(histogram, np.float64)
    aa, bb = np.meshgrid(hist_centres, hist_centres, indexing="ij")
    grid = np.stack([aa.ravel(), bb.ravel()], -1)
    has = hist.ravel() > 0
    p = np.bincount(nearest_bin(grid[has], centres), weights=hist.ravel()[has],
                    minlength=len(centres))
    return p / max(p.sum(), 1e-12)


def smooth_prior(p, centres, sigma=PRIOR_SIGMA):
    """p smoothed by a Gaussian kernel of sigma (ab units) over the bin centres.

    Each bin spreads its mass over the Q bins with Gaussian weights normalized per
    source bin, so the smoothed prior still sums to 1.
    """
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1).astype(np.float64)
    kernel = np.exp(-d2 / (2.0 * sigma ** 2))
    kernel /= kernel.sum(0, keepdims=True)  # column j: where bin j's mass goes
    smoothed = kernel @ np.asarray(p, np.float64)
    return smoothed / smoothed.sum()


def rebalancing_weights(p_smoothed, mix=REBALANCE_MIX):
    """w proportional to 1 / ((1 - mix) p~ + mix / Q), normalized so sum(p~ w) = 1."""
    p = np.asarray(p_smoothed, np.float64)
    w = 1.0 / ((1.0 - mix) * p + mix / len(p))
    return w / (p * w).sum()


def weights_from_histogram(histogram, hist_centres, centres, sigma=PRIOR_SIGMA,
                           mix=REBALANCE_MIX):
    """Class-rebalancing weights (Q,) from an ab histogram on a square grid."""
    p = prior_on_bins(histogram, hist_centres, centres)
    return rebalancing_weights(smooth_prior(p, centres, sigma), mix)


# ---------------------------------------------------------------- keras.ops parts


def _squared_distances(ab, centres):
    """|ab - c_q|^2 for ab (..., 2) and centres (Q, 2) -> (..., Q), as one matmul."""
    c = ops.convert_to_tensor(centres, "float32")
    return (ops.sum(ab * ab, -1, keepdims=True) - 2.0 * ops.matmul(ab, ops.transpose(c))
            + ops.sum(c * c, -1))


def soft_encode_sparse(ab, centres, k=SOFT_NEIGHBOURS, sigma=SOFT_SIGMA):
    """ab (..., 2) in ab units -> (indices (..., k), weights (..., k)) of the k nearest
    bins, nearest first, weights from a Gaussian kernel of sigma, summing to 1."""
    ab = ops.convert_to_tensor(ab, "float32")
    neg_d2, idx = ops.top_k(-_squared_distances(ab, centres), k)
    w = ops.exp((neg_d2 - neg_d2[..., :1]) / (2.0 * sigma ** 2))  # shifted: no underflow
    return idx, w / ops.sum(w, -1, keepdims=True)


def soft_encode(ab, centres, k=SOFT_NEIGHBOURS, sigma=SOFT_SIGMA):
    """The dense soft-encoded target Z (..., Q): k non-zero entries summing to 1."""
    idx, w = soft_encode_sparse(ab, centres, k, sigma)
    return ops.sum(ops.one_hot(idx, len(centres)) * w[..., None], -2)


def annealed_mean(logits, centres, temperature=TEMPERATURE):
    """ab (..., 2) decoded from bin logits (or log-probabilities) (..., Q).

    f_T(z) = softmax(log z / T); T = 1 is the mean of the predicted distribution,
    T -> 0 its mode. Logits and log z differ by a constant per pixel, which the
    softmax ignores, so logits / T is the same thing.
    """
    z = ops.softmax(ops.convert_to_tensor(logits, "float32") / float(temperature), axis=-1)
    return ops.matmul(z, ops.convert_to_tensor(centres, "float32"))


@keras.saving.register_keras_serializable(package="colorization")
class RebalancedSoftCrossEntropy(keras.losses.Loss):
    """Zhang et al.'s multinomial cross-entropy with class rebalancing:

        L = -mean over pixels of  v(Z) * sum_q Z_q log softmax(logits)_q

    y_true: ab01 (B, h, w, 2) at the output's resolution (read_input's target);
    it is soft-encoded here (5 nearest bins, sigma 5), sparsely: the dense
    (B, h, w, Q) target is never built. y_pred: logits (B, h, w, Q).
    v(Z) = weights[nearest bin of the pixel's ab]; None means all ones.
    """

    def __init__(self, centres, weights=None, name="rebalanced_soft_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.centres = np.asarray(centres, np.float32)
        self.weights = None if weights is None else np.asarray(weights, np.float32)

    def call(self, y_true, y_pred):
        ab = ops.cast(y_true, "float32") * 255.0 - 128.0
        idx, z = soft_encode_sparse(ab, self.centres)
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        xent = -ops.sum(z * ops.take_along_axis(log_p, idx, axis=-1), -1)
        if self.weights is not None:
            xent = xent * ops.take(ops.convert_to_tensor(self.weights), idx[..., 0])
        return ops.mean(xent, axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "centres": self.centres.tolist(),
                "weights": None if self.weights is None else self.weights.tolist()}


# ---------------------------------------------------------------- the output space


@keras.saving.register_keras_serializable(package="colorization")
class BinLogits(keras.layers.Conv2D):
    """The ab_bins output convolution of a model that brings its own bin centres
    (a converted published model: Zhang et al.'s 313 bins, in the order of its
    outputs). The centres are saved in the layer's config, so decoding uses the
    model's own bins, not resources/ab_gamut_bins.txt."""

    def __init__(self, bin_centres, temperature=None, **kwargs):
        self.bin_centres = np.asarray(bin_centres, np.float32).reshape(-1, 2)
        self.temperature = None if temperature is None else float(temperature)
        kwargs.setdefault("filters", len(self.bin_centres))
        kwargs.setdefault("kernel_size", 1)
        super().__init__(**kwargs)

    def get_config(self):
        return {**super().get_config(), "bin_centres": self.bin_centres.tolist(),
                "temperature": self.temperature}


class AbBins(OutputSpace):
    """Zhang et al.'s output: logits over the in-gamut ab bins, trained with the
    rebalanced soft-encoded cross-entropy, decoded by annealed mean. `centres`:
    a model's own bins (BinLogits); None is the project's gamut bins."""

    name = "ab_bins"
    activation = None

    def __init__(self, centres=None, temperature=None):
        self._centres = None if centres is None else np.asarray(centres, np.float32)
        self.temperature = TEMPERATURE if temperature is None else float(temperature)

    def centres(self):
        return gamut_bins() if self._centres is None else self._centres

    def bound(self, model):
        try:
            layer = model.get_layer(self.name)
        except ValueError:
            return self
        own = getattr(layer, "bin_centres", None)
        return self if own is None else AbBins(own, getattr(layer, "temperature", None))

    def channels(self):
        return len(self.centres())

    def loss(self, summary=None):
        """Rebalanced by the training set's colour prior (dataset.json); unweighted
        without one."""
        centres = self.centres()
        weights = (None if summary is None
                   else weights_from_histogram(*colour_prior(summary), centres))
        return RebalancedSoftCrossEntropy(centres, weights)

    def decode(self, value, temperature=None, gray=None):
        del gray
        from colorization.colorspace import ab_to_model

        t = self.temperature if temperature is None else temperature
        return ab_to_model(ops.convert_to_numpy(annealed_mean(value, self.centres(), t)))

    def decode_graph(self, value, temperature=None, gray=None):
        del gray
        t = self.temperature if temperature is None else temperature
        return (annealed_mean(value, self.centres(), t) + 128.0) / 255.0

    def check(self, model):
        q = int(model.output[self.name].shape[-1])
        if self._centres is not None:
            return None if q == len(self._centres) else (
                f"the model predicts {q} ab bins but carries {len(self._centres)} bin centres")
        if q != len(gamut_bins()):
            return (f"the model predicts {q} ab bins but resources/ab_gamut_bins.txt has "
                    f"{len(gamut_bins())}")
        return None

    def describe(self, model):
        return f"classification head over {int(model.output[self.name].shape[-1])} ab bins"


AB_BINS = AbBins()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--regenerate", action="store_true", help=f"rewrite {RESOURCE}")
    args = p.parse_args(argv)
    centres = derive_gamut_bins()
    if args.regenerate:
        write_gamut_bins(RESOURCE, centres)
        print(f"wrote {RESOURCE}: Q = {len(centres)}")
        return 0
    stored = gamut_bins()
    same = stored.shape == centres.shape and np.array_equal(stored, centres)
    print(f"{RESOURCE}: Q = {len(stored)}; regenerated Q = {len(centres)}; "
          f"{'identical' if same else 'DIFFERENT (run with --regenerate)'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
