"""Each metric against a hand computation or an independent implementation."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorization import metrics
from colorization.example_codec import AB_BIN_CENTERS


def photo(rng, h=64, w=80):
    import cv2

    small = rng.uniform(0, 255, (4, 5, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h)) + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(
        np.uint8)


def test_ground_truth_scores_perfectly():
    rng = np.random.default_rng(0)
    img = photo(rng)
    ab = rng.uniform(-60, 60, (64, 80, 2))
    m = metrics.image_metrics(img, img, ab, ab)
    assert m["psnr"] == metrics.PSNR_CAP
    assert m["ssim"] == pytest.approx(1.0)
    assert m["ab_rmse"] == 0.0 and m["auc"] == pytest.approx(100.0)
    assert m["delta_colourfulness"] == 0.0


def test_constant_ab_offset_of_ten_gives_the_hand_computed_auc():
    ab = np.zeros((10, 10, 2))
    off = ab.copy()
    off[..., 0] = 6.0
    off[..., 1] = 8.0  # |(6, 8)| = 10 for every pixel
    errors = metrics.ab_errors(off, ab)
    # Thresholds 0..150: the 141 thresholds t >= 10 count every pixel, t < 10 none.
    assert metrics.auc(errors) == pytest.approx(100.0 * 141 / 151)
    assert metrics.ab_rmse(off, ab) == pytest.approx(10.0)
    # Rebalancing cannot change a constant error.
    w = np.random.default_rng(1).uniform(0.1, 3, errors.shape)
    assert metrics.auc(errors, w) == pytest.approx(100.0 * 141 / 151)


def test_rebalanced_auc_weights_rare_colours_up():
    # Half the pixels gray (common in the prior), half red (rare); only red is wrong.
    truth = np.zeros((2, 50, 2))
    truth[1] = (60.0, 40.0)
    pred = truth.copy()
    pred[1] = 0.0
    prior = np.zeros((27, 27))
    prior[13, 13], prior[19, 17] = 0.9, 0.1
    errors = metrics.ab_errors(pred, truth)
    w = metrics.inverse_prior_weights(truth, prior, AB_BIN_CENTERS)
    assert w.mean() == pytest.approx(1.0)
    assert w[50:].mean() / w[:50].mean() == pytest.approx(9.0)
    # Raw: gray is always right (1/2), red (error 72.1) right from t = 73 on.
    red_ok = (metrics.AUC_THRESHOLDS >= np.hypot(60, 40)).mean()
    assert metrics.auc(errors) == pytest.approx(100 * (0.5 + 0.5 * red_ok))
    assert metrics.auc(errors, w) == pytest.approx(100 * (0.1 + 0.9 * red_ok))


def test_psnr_and_ssim_match_scikit_image():
    rng = np.random.default_rng(2)
    a = photo(rng)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    assert metrics.psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    reference = structural_similarity(a, b, data_range=255, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert metrics.ssim(b, a) == pytest.approx(reference, abs=1e-3)


def test_colourfulness_of_a_known_image():
    # Two pixels: pure red (255, 0, 0) and black. rg = (255, 0), yb = (127.5, 0).
    img = np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)
    sigma = np.hypot(127.5, 63.75)  # population std of (255, 0) and of (127.5, 0)
    mu = np.hypot(127.5, 63.75)
    assert metrics.colourfulness(img) == pytest.approx(sigma + 0.3 * mu)
    assert metrics.colourfulness(np.full((4, 4, 3), 90, np.uint8)) == 0.0


def test_false_colour_share_by_hand():
    """Four pixels of true ab (30, 0): predictions gray (error 30, as gray's: not
    false), the truth (0), (-15, 0) (error 45 > 30 + 10: false) and (0, 30)
    (error 42.4 > 40: false); gray itself scores 0."""
    truth = np.array([[[30.0, 0.0]] * 4], np.float32)
    pred = np.array([[[0.0, 0.0], [30.0, 0.0], [-15.0, 0.0], [0.0, 30.0]]], np.float32)
    assert metrics.false_colour_share(pred, truth) == pytest.approx(50.0)
    assert metrics.false_colour_share(np.zeros_like(truth), truth) == 0.0
    # Just within the margin: error 39.9 against gray's 30.
    assert metrics.false_colour_share(np.array([[[-9.9, 0.0]]]), truth[:, :1]) == 0.0
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 3)).astype(np.uint8)
    half = ((rgb.astype(np.float64) - 128) * 0.5 + 128).round().astype(np.uint8)
    m = metrics.image_metrics(rgb, rgb, np.zeros((8, 8, 2)), np.zeros((8, 8, 2)))
    assert m["colourfulness_pct"] == pytest.approx(100.0) and m["false_colour"] == 0.0
    m = metrics.image_metrics(half, rgb, np.zeros((8, 8, 2)), np.zeros((8, 8, 2)))
    want = 100 * metrics.colourfulness(half) / metrics.colourfulness(rgb)
    assert m["colourfulness_pct"] == pytest.approx(want) and 40 < want < 60
