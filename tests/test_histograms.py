"""Larsson et al.'s histogram outputs (histograms.py): bins, targets, loss, decoding."""

import math

import keras
import numpy as np
import pytest
from scipy.stats import norm

from colorization import histograms as hg

K = hg.BINS


def test_gaussian_quantile_edges_hold_equal_mass():
    edges = hg.gaussian_quantile_edges()
    assert edges.shape == (K - 1,)
    # Independent reference: SciPy's normal quantile function.
    np.testing.assert_allclose(edges, norm.ppf(np.arange(1, K) / K, 0, 25), atol=1e-4)
    mass = np.diff(norm.cdf(np.concatenate([[-np.inf], edges, [np.inf]]), 0, 25))
    np.testing.assert_allclose(mass, 1 / K, atol=1e-6)
    assert edges[K // 2 - 1] == pytest.approx(0.0, abs=1e-5)  # the middle edge is mu
    np.testing.assert_allclose(edges, -edges[::-1], atol=1e-4)  # symmetric about 0
    # Fine near gray, wide for saturated colours.
    widths = np.diff(edges)
    assert widths[K // 2 - 1] < 2.0 < widths[0]
    centres = hg.gaussian_quantile_centres()
    inner = np.concatenate([[-np.inf], edges, [np.inf]])
    assert np.all((centres > inner[:-1]) & (centres < inner[1:]))


def test_targets_are_one_hot_and_sum_to_one():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-110, 110, (3, 5, 7, 2)).astype(np.float32)
    ab[0, 0, 0] = (0.0, 0.0)  # gray: hue undefined, still exactly one bin
    ab[0, 0, 1] = (500.0, -500.0)  # beyond every edge
    for mode in ("lab", "hue_chroma"):
        y = keras.ops.convert_to_numpy(hg.histogram_targets(ab, mode))
        assert y.shape == (3, 5, 7, 2 * K)
        assert set(np.unique(y)) == {0.0, 1.0}
        np.testing.assert_array_equal(y[..., :K].sum(-1), 1.0)
        np.testing.assert_array_equal(y[..., K:].sum(-1), 1.0)


def test_bin_indices_by_hand():
    ab = np.array([[0.0, -1000.0], [1000.0, 0.1], [0.0, 50.0], [134.0, 0.0], [-1.0, -1e-3]],
                  np.float32)
    lab = keras.ops.convert_to_numpy(hg.bin_indices(ab, "lab"))
    # Value 0 sits on the middle edge and goes above it; the tails go to the end bins.
    np.testing.assert_array_equal(lab[:2], [[16, 0], [31, 16]])
    hc = keras.ops.convert_to_numpy(hg.bin_indices(ab, "hue_chroma"))
    # (0, 50): hue 1/4 -> bin 8, chroma 50 / 134 -> bin floor(11.94) = 11.
    np.testing.assert_array_equal(hc[2], [8, 11])
    np.testing.assert_array_equal(hc[3], [0, 31])  # hue 0, chroma 1 -> the last bin
    assert hc[4, 0] == 16  # a = -1, b just below 0: hue just above 1/2


def numpy_kl(y, p):
    """D(y || p) = sum y log(y / p), with 0 log 0 = 0."""
    terms = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / p), 0.0)
    return terms.sum(-1)


def numpy_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_hue_chroma_loss_equals_a_hand_computation():
    rng = np.random.default_rng(3)
    ab = np.array([[[[30.0, 40.0], [-20.0, 5.0]], [[0.0, -60.0], [2.0, 1.0]]]], np.float32)
    logits = rng.normal(0, 2, (1, 2, 2, 2 * K)).astype(np.float32)
    total = []
    for (a, b), z in zip(ab.reshape(-1, 2), logits.reshape(-1, 2 * K), strict=True):
        hue = (math.atan2(b, a) / (2 * math.pi)) % 1.0
        chroma = min(math.hypot(a, b) / hg.CHROMA_MAX, 1.0)
        y_h, y_c = np.zeros(K), np.zeros(K)
        y_h[int(hue * K)] = 1
        y_c[min(int(chroma * K), K - 1)] = 1
        p_h, p_c = numpy_softmax(z[:K].astype(np.float64)), numpy_softmax(z[K:].astype(np.float64))
        total.append(numpy_kl(y_c, p_c) + 5.0 * chroma * numpy_kl(y_h, p_h))
    expected = np.mean(total)
    loss = hg.HistogramKL("hue_chroma")
    got = float(keras.ops.convert_to_numpy(loss((ab + 128) / 255, logits)))
    assert got == pytest.approx(expected, rel=1e-5)
    # The chroma weight matters: a gray pixel's hue costs nothing.
    gray = np.full((1, 1, 1, 2), 128 / 255, np.float32)
    one = logits[:, :1, :1]
    only_chroma = float(keras.ops.convert_to_numpy(hg.HistogramKL("hue_chroma")(gray, one)))
    y_c = np.zeros(K)
    y_c[0] = 1
    assert only_chroma == pytest.approx(numpy_kl(y_c, numpy_softmax(one[0, 0, 0, K:])), rel=1e-5)
    restored = hg.HistogramKL.from_config(loss.get_config())
    assert restored.mode == "hue_chroma" and restored.hue_weight == 5.0


def test_lab_loss_equals_a_hand_computation():
    rng = np.random.default_rng(4)
    ab = rng.uniform(-80, 80, (2, 3, 3, 2)).astype(np.float32)
    logits = rng.normal(0, 2, (2, 3, 3, 2 * K)).astype(np.float32)
    edges = norm.ppf(np.arange(1, K) / K, 0, 25)
    total = []
    for (a, b), z in zip(ab.reshape(-1, 2), logits.reshape(-1, 2 * K), strict=True):
        y_a, y_b = np.zeros(K), np.zeros(K)
        y_a[np.searchsorted(edges, a, side="right")] = 1
        y_b[np.searchsorted(edges, b, side="right")] = 1
        total.append(numpy_kl(y_a, numpy_softmax(z[:K].astype(np.float64)))
                     + numpy_kl(y_b, numpy_softmax(z[K:].astype(np.float64))))
    got = float(keras.ops.convert_to_numpy(hg.HistogramKL("lab")((ab + 128) / 255, logits)))
    assert got == pytest.approx(np.mean(total), rel=1e-5)


def test_expectation_decoding():
    centres = hg.gaussian_quantile_centres()
    p = np.zeros(K)
    p[5] = 1
    assert hg.expectation(p, centres) == pytest.approx(centres[5])
    p = np.zeros(K)
    p[[15, 16]] = 0.5  # symmetric about 0
    assert hg.expectation(p, centres) == pytest.approx(0.0, abs=1e-5)
    p = np.zeros(K)
    p[[0, 31]] = (0.25, 0.75)
    assert hg.expectation(p, centres) == pytest.approx(0.25 * centres[0] + 0.75 * centres[31])


def test_median_decoding():
    assert hg.histogram_median(np.full(K, 1 / K)) == pytest.approx(0.5)
    one_hot = np.eye(K)[7]
    assert hg.histogram_median(one_hot) == pytest.approx(7.5 / K)
    p = np.zeros(K)
    p[[0, 3]] = (0.25, 0.75)
    # The cumulative sum passes 1/2 a third of the way into bin 3.
    assert hg.histogram_median(p) == pytest.approx((3 + 1 / 3) / K)
    p = np.zeros(K)
    p[[2, 9]] = (0.5, 0.5)  # exactly 1/2 at the end of bin 2
    assert hg.histogram_median(p) == pytest.approx(3 / K)
    batch = np.stack([one_hot, np.full(K, 1 / K)]).reshape(2, 1, K)
    np.testing.assert_allclose(hg.histogram_median(batch)[:, 0], [7.5 / K, 0.5])


def test_complex_mean_hue_and_chromatic_fading():
    p = np.eye(K)[8]
    z = hg.complex_mean(p)
    assert abs(z) == pytest.approx(1.0)
    assert np.angle(z) == pytest.approx(2 * np.pi * 8.5 / K)
    # The circular mean of bins 31 and 0 is at hue 0, not the arithmetic 1/2.
    p = np.zeros(K)
    p[[31, 0]] = 0.5
    assert np.angle(hg.complex_mean(p)) == pytest.approx(0.0, abs=1e-9)
    # Opposite hues cancel: nothing to name, chroma fades to 0.
    p = np.zeros(K)
    p[[0, 16]] = 0.5
    assert abs(hg.complex_mean(p)) == pytest.approx(0.0, abs=1e-12)
    assert abs(hg.complex_mean(np.full(K, 1 / K))) == pytest.approx(0.0, abs=1e-12)
    assert hg.chromatic_fading(0.015) == pytest.approx(0.5)
    assert hg.chromatic_fading(0.0) == 0.0
    assert hg.chromatic_fading(0.5) == 1.0
    assert hg.chromatic_fading(0.015 + 0.02j) == pytest.approx(0.025 / 0.03)


def test_decode_ab_from_confident_and_spread_histograms():
    def logits(hue_bin, chroma_bin):
        z = np.full(2 * K, -60.0, np.float32)
        z[hue_bin] = z[K + chroma_bin] = 60.0
        return z

    ab = hg.decode_ab(logits(4, 10), "hue_chroma")
    chroma, hue = 10.5 / K * hg.CHROMA_MAX, 2 * np.pi * 4.5 / K
    np.testing.assert_allclose(ab, [chroma * np.cos(hue), chroma * np.sin(hue)], rtol=1e-4)
    spread = logits(4, 10)
    spread[:K] = 0.0  # uniform hue: |z| = 0, faded to gray
    np.testing.assert_allclose(hg.decode_ab(spread, "hue_chroma"), [0.0, 0.0], atol=1e-4)
    centres = hg.gaussian_quantile_centres()
    np.testing.assert_allclose(hg.decode_ab(logits(3, 28), "lab"), [centres[3], centres[28]],
                               rtol=1e-4)
