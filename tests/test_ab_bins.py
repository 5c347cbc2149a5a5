"""The quantized ab space of Zhang et al.: bins, soft encoding, rebalancing, decoding."""

import itertools

import keras
import numpy as np
import pytest
from skimage.color import rgb2lab

from colorization import ab_bins

HALF_DIAGONAL = ab_bins.GRID * np.sqrt(2) / 2


@pytest.fixture(scope="module")
def centres():
    return ab_bins.gamut_bins()


def nearest_distance(ab, centres):
    return np.sqrt(((ab[:, None, :] - centres[None]) ** 2).sum(-1)).min(1)


@pytest.mark.slow
def test_every_in_gamut_colour_has_a_bin_within_half_a_diagonal(centres):
    # Independent reference: scikit-image's Lab, on random colours inside the
    # cube and on its faces (where the edge of the ab gamut lies at every L).
    rng = np.random.default_rng(0)
    inside = rng.random((100_000, 3))
    faces = rng.random((60_000, 3))
    axis = rng.integers(0, 3, len(faces))
    faces[np.arange(len(faces)), axis] = rng.integers(0, 2, len(faces))
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
    rgb = np.concatenate([inside, faces, corners]).astype(np.float64)
    ab = rgb2lab(rgb[None])[0][:, 1:]
    d = nearest_distance(ab.astype(np.float32), centres)
    assert d.max() <= HALF_DIAGONAL + 1e-3
    # and the set is not padded: every bin is the nearest one of some colour
    used = np.unique(ab_bins.nearest_bin(ab, centres))
    assert len(used) > 0.9 * len(centres)


@pytest.mark.slow
def test_bins_file_is_what_the_derivation_gives(centres):
    assert centres.shape[1] == 2 and len(np.unique(centres, axis=0)) == len(centres)
    np.testing.assert_array_equal(np.mod(centres, ab_bins.GRID), 0)
    np.testing.assert_array_equal(ab_bins.derive_gamut_bins(), centres)


def test_soft_encoding_has_exactly_five_bins_summing_to_one(centres):
    rng = np.random.default_rng(1)
    ab = rng.uniform(-80, 80, (3, 7, 2)).astype(np.float32)
    ab[0, 0] = (5.0, 0.0)  # equidistant from bins (0, 0) and (10, 0): ties still give 5
    z = keras.ops.convert_to_numpy(ab_bins.soft_encode(ab, centres))
    assert z.shape == (3, 7, len(centres))
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-6)
    assert ((z > 0).sum(-1) == 5).all()
    # The five are the five nearest, weighted by a Gaussian of sigma 5 (by hand).
    for a in ab.reshape(-1, 2):
        d2 = ((centres - a) ** 2).sum(-1)
        nearest = np.argsort(d2, kind="stable")[:5]
        w = np.exp(-d2[nearest] / (2 * 5.0 ** 2))
        got = keras.ops.convert_to_numpy(ab_bins.soft_encode(a[None], centres))[0]
        np.testing.assert_allclose(np.sort(got[got > 0]), np.sort(w / w.sum()), rtol=1e-4)


def test_rebalancing_weights_have_expectation_one_and_favour_rare_colours(centres):
    rng = np.random.default_rng(2)
    p = rng.random(len(centres)) ** 8  # a peaked prior
    p /= p.sum()
    smoothed = ab_bins.smooth_prior(p, centres)
    np.testing.assert_allclose(smoothed.sum(), 1.0)
    w = ab_bins.rebalancing_weights(smoothed)
    np.testing.assert_allclose((smoothed * w).sum(), 1.0)
    assert w[np.argmin(smoothed)] > w[np.argmax(smoothed)]
    # lambda = 1: uniform importance; lambda = 0: w * p~ is the same in every bin.
    np.testing.assert_allclose(ab_bins.rebalancing_weights(smoothed, mix=1.0), 1.0)
    pure = ab_bins.rebalancing_weights(smoothed, mix=0.0) * smoothed
    np.testing.assert_allclose(pure, pure[0])


def test_smoothing_spreads_a_single_bin_by_a_gaussian_of_sigma_five(centres):
    k = int(np.argmin(np.abs(centres).sum(-1)))  # the bin at (0, 0)
    p = np.zeros(len(centres))
    p[k] = 1.0
    s = ab_bins.smooth_prior(p, centres)
    right = int(np.flatnonzero((centres == (10, 0)).all(-1))[0])
    diagonal = int(np.flatnonzero((centres == (10, 10)).all(-1))[0])
    # one grid step is 2 sigma: exp(-100 / 50) relative to the centre, diagonal exp(-4)
    np.testing.assert_allclose(s[right] / s[k], np.exp(-2.0), rtol=1e-6)
    np.testing.assert_allclose(s[diagonal] / s[k], np.exp(-4.0), rtol=1e-6)


def test_prior_from_the_dataset_histogram(centres):
    grid = np.arange(-130, 131, 10)
    hist = np.zeros((len(grid), len(grid)))
    hist[13, 13] = 30  # ab (0, 0)
    hist[15, 10] = 10  # ab (20, -30)
    p = ab_bins.prior_on_bins(hist, grid, centres)
    np.testing.assert_allclose(p.sum(), 1.0)
    assert p[ab_bins.nearest_bin((0, 0), centres)] == pytest.approx(0.75)
    assert p[ab_bins.nearest_bin((20, -30), centres)] == pytest.approx(0.25)


def test_annealed_mean_is_the_mean_at_t1_and_tends_to_the_mode(centres):
    rng = np.random.default_rng(3)
    p = rng.random(len(centres))
    p[17] = 3 * p.max()  # a clear mode
    p /= p.sum()
    log_p = np.log(p).astype(np.float32)
    mean = keras.ops.convert_to_numpy(ab_bins.annealed_mean(log_p, centres, 1.0))
    np.testing.assert_allclose(mean, p @ centres, atol=1e-3)
    distances = [np.linalg.norm(keras.ops.convert_to_numpy(
        ab_bins.annealed_mean(log_p, centres, t)) - centres[17]) for t in (1.0, 0.38, 0.1, 0.01)]
    assert all(a > b for a, b in itertools.pairwise(distances))
    assert distances[-1] < 1e-3


def test_loss_equals_a_hand_computation(centres):
    rng = np.random.default_rng(4)
    ab = rng.uniform(-60, 60, (2, 3, 4, 2)).astype(np.float32)
    logits = rng.normal(0, 2, (2, 3, 4, len(centres))).astype(np.float32)
    weights = rng.uniform(0.5, 3, len(centres)).astype(np.float32)
    loss = ab_bins.RebalancedSoftCrossEntropy(centres, weights)
    got = float(keras.ops.convert_to_numpy(loss((ab + 128) / 255, logits)))
    # by hand: dense soft targets, log-softmax, the weight of the nearest bin
    z = keras.ops.convert_to_numpy(ab_bins.soft_encode(ab, centres))
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    v = weights[ab_bins.nearest_bin(ab, centres)]
    np.testing.assert_allclose(got, np.mean(v * -(z * log_p).sum(-1)), rtol=1e-4)
    # and it serializes with its weights
    again = ab_bins.RebalancedSoftCrossEntropy.from_config(loss.get_config())
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(again((ab + 128) / 255, logits))),
                               got, rtol=1e-6)
