"""Colorization quality metrics: the one implementation evaluate.py and the
training callbacks use. All take NumPy arrays of one image.

* PSNR and SSIM on RGB in 0..255 (uint8 or float).
* ab RMSE: sqrt(mean over pixels of (da^2 + db^2)), in ab units.
* Colourfulness (Hasler & Suesstrunk 2003): sigma_rgyb + 0.3 mu_rgyb, with
  rg = R - G and yb = (R + G) / 2 - B on 0..255.
* Zhang et al.'s AuC: for thresholds t = 0, 1, ..., 150 the fraction of pixels
  whose ab error (L2) is at most t, averaged over the thresholds, in percent; the
  rebalanced variant weights each pixel by the inverse colour prior of its
  ground-truth ab bin, weights normalized to mean 1.
"""

import cv2
import numpy as np

# Identical images have infinite PSNR; reports cap it so averages stay finite.
PSNR_CAP = 100.0
AUC_THRESHOLDS = np.arange(0, 151, dtype=np.float32)
# SSIM as in Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.
_SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 1.5, 0.01, 0.03


def psnr(pred, truth, data_range=255.0):
    mse = np.mean((np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * np.log10(data_range ** 2 / mse)))


def ssim(pred, truth, data_range=255.0):
    """Mean SSIM over pixels and channels (Gaussian window, population statistics)."""
    # Channels are scored independently and averaged, as for colour images in skimage.
    x = np.asarray(pred, np.float64)
    y = np.asarray(truth, np.float64)

    def blur(img):
        # 11 taps (radius 3.5 sigma) with half-sample symmetric borders: the same
        # window as scikit-image's gaussian_weights=True.
        return cv2.GaussianBlur(img, (11, 11), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = 5  # the border where the window leaves the image is not scored (as skimage)
    return float(s[pad:-pad, pad:-pad].mean()) if min(s.shape[:2]) > 2 * pad else float(s.mean())


def ab_rmse(pred_ab, truth_ab):
    d = np.asarray(pred_ab, np.float64) - np.asarray(truth_ab, np.float64)
    return float(np.sqrt(np.mean(np.sum(d * d, -1))))


def colourfulness(rgb):
    rgb = np.asarray(rgb, np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def ab_errors(pred_ab, truth_ab):
    """Per-pixel L2 error in ab, flattened."""
    d = np.asarray(pred_ab, np.float32) - np.asarray(truth_ab, np.float32)
    return np.sqrt(np.sum(d * d, -1)).ravel()


FALSE_COLOUR_MARGIN = 10.0  # ab units


def false_colour_share(pred_ab, truth_ab, margin=FALSE_COLOUR_MARGIN):
    """Percent of pixels whose ab error exceeds gray's own (|truth ab|, the error of
    predicting ab = 0) by more than `margin`: colour that is worse than none. Gray
    scores 0 by definition."""
    truth = np.asarray(truth_ab, np.float32)
    gray_errors = np.sqrt(np.sum(truth * truth, -1)).ravel()
    return float(100.0 * np.mean(ab_errors(pred_ab, truth) > gray_errors + margin))


def accuracy_curve(errors, weights=None):
    """Fraction of pixels (weighted) with error <= t for each t of AUC_THRESHOLDS."""
    errors = np.asarray(errors, np.float32).ravel()
    w = np.ones_like(errors) if weights is None else np.asarray(weights, np.float64).ravel()
    order = np.argsort(errors)
    cum = np.cumsum(w[order])
    # For each threshold, the total weight of errors <= t.
    idx = np.searchsorted(errors[order], AUC_THRESHOLDS, side="right")
    below = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)
    return below / cum[-1]


def auc(errors, weights=None):
    """Area under the accuracy curve over thresholds 0..150, in percent."""
    return float(100.0 * accuracy_curve(errors, weights).mean())


def inverse_prior_weights(truth_ab, prior, bin_centers):
    """Per-pixel weights 1 / prior(bin of the true ab), normalized to mean 1.

    prior: (n, n) counts or probabilities on the bin_centers grid (dataset.json's
    ab_histogram); bins the training set never saw get the rarest seen bin's weight.
    """
    p = np.asarray(prior, np.float64)
    p = p / p.sum()
    seen = p > 0
    inverse = np.where(seen, 1.0 / np.where(seen, p, 1.0), 0.0)
    inverse[~seen] = inverse[seen].max()
    step = bin_centers[1] - bin_centers[0]
    ab = np.asarray(truth_ab, np.float64).reshape(-1, 2)
    idx = np.clip(np.rint((ab - bin_centers[0]) / step), 0, len(bin_centers) - 1).astype(int)
    w = inverse[idx[:, 0], idx[:, 1]]
    return w / w.mean()


def image_metrics(pred_rgb8, truth_rgb8, pred_ab, truth_ab, prior=None, bin_centers=None):
    """Every metric of one image, as a dict."""
    errors = ab_errors(pred_ab, truth_ab)
    out = {"psnr": psnr(pred_rgb8, truth_rgb8), "ssim": ssim(pred_rgb8, truth_rgb8),
           "ab_rmse": ab_rmse(pred_ab, truth_ab), "colourfulness": colourfulness(pred_rgb8),
           "auc": auc(errors)}
    truth_colourfulness = colourfulness(truth_rgb8)
    out["delta_colourfulness"] = out["colourfulness"] - truth_colourfulness
    if truth_colourfulness > 1e-6:  # as a percentage of the truth's (none of a gray one)
        out["colourfulness_pct"] = 100.0 * out["colourfulness"] / truth_colourfulness
    out["false_colour"] = false_colour_share(pred_ab, truth_ab)
    if prior is not None:
        out["auc_rebalanced"] = auc(errors, inverse_prior_weights(truth_ab, prior, bin_centers))
    return out
