"""Temporal metrics of a colorized clip (evaluate.py --video), one frame pair at a time.

* Warping error (Lai et al. 2018, "Learning blind video temporal consistency"):
  E_t = sum M (O_{t+1} - W(O_t))^2 / sum M over RGB in [0, 1], W warping frame t
  to t+1 along the backward flow of the *input* frames, M their non-occlusion mask
  (temporal.consistent), averaged over the pairs. DIS flow stands where they used
  FlowNet2.
* Colour distribution consistency (Liu et al., TCVC): per-channel 256-bin RGB
  histograms, the Jensen-Shannon divergence (nats) between frames t and t + d,
  averaged over channels and frames, for d in 1, 2, 4; CDC is their mean.
"""

import numpy as np

from colorization import temporal

CDC_GAPS = (1, 2, 4)


def rgb_histograms(rgb8):
    """(3, 256) per-channel histograms of an RGB uint8 frame, each summing to 1."""
    flat = np.asarray(rgb8, np.uint8).reshape(-1, 3)
    h = np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    return h / max(1, len(flat))


def warping_error(frame, later, back, mask):
    """One pair's E_t: frames RGB uint8, back the flow later -> frame, mask M."""
    a = np.asarray(frame, np.float32) / 255.0
    b = np.asarray(later, np.float32) / 255.0
    d = b - temporal.warp(a, back)
    m = mask.astype(np.float32)
    return float(np.sum(m * np.sum(d * d, -1)) / max(1.0, float(m.sum())))


class ClipScore:
    """Accumulates E_warp and CDC of several outputs of one clip, frame by frame:
    add(input_rgb8_or_gray8, {name: output rgb8}); flows come from the input."""

    def __init__(self):
        self.engine = temporal.flow_engine()
        self.prev_input = None
        self.prev = {}
        self.warp_sums, self.pairs = {}, 0
        self.history = {}  # name -> the last max(CDC_GAPS) frames' histograms
        self.cdc_sums = {}
        self.frames = 0

    def add(self, input_frame, outputs):
        gray8 = np.asarray(input_frame, np.uint8)
        if gray8.ndim == 3:
            from colorization.colorspace import rgb8_to_l

            gray8 = temporal.l8(rgb8_to_l(gray8) / 100.0)
        if self.prev_input is not None:
            back, fore = temporal.flows(self.engine, self.prev_input, gray8)
            mask = temporal.consistent(back, fore)
            for name, out in outputs.items():
                e = warping_error(self.prev[name], out, back, mask)
                self.warp_sums[name] = self.warp_sums.get(name, 0.0) + e
            self.pairs += 1
        for name, out in outputs.items():
            hist = rgb_histograms(out)
            past = self.history.setdefault(name, [])
            sums = self.cdc_sums.setdefault(name, dict.fromkeys(CDC_GAPS, 0.0))
            for d in CDC_GAPS:
                if len(past) >= d:
                    sums[d] += np.mean([temporal.js_divergence(past[-d][c], hist[c])
                                        for c in range(3)])
            past.append(hist)
            del past[:-max(CDC_GAPS)]
        self.frames += 1
        self.prev_input, self.prev = gray8, dict(outputs)

    def result(self, name):
        """{'e_warp', 'cdc', 'cdc_1', 'cdc_2', 'cdc_4'} of one output (NaN where the
        clip is too short)."""
        out = {"e_warp": self.warp_sums.get(name, np.nan) / self.pairs if self.pairs else np.nan}
        gaps = []
        for d in CDC_GAPS:
            n = max(0, self.frames - d)
            value = self.cdc_sums[name][d] / n if n else np.nan
            out[f"cdc_{d}"] = value
            gaps.append(value)
        out["cdc"] = float(np.nanmean(gaps)) if not np.all(np.isnan(gaps)) else np.nan
        return out


IMAGE_KEYS = ("ab_rmse", "auc", "colourfulness", "false_colour")


def frame_metrics(out_rgb8, pred_ab, truth_rgb8, truth_ab):
    """The real-photo issue's image metrics of one colorized frame."""
    from colorization import metrics

    return {"ab_rmse": metrics.ab_rmse(pred_ab, truth_ab),
            "auc": metrics.auc(metrics.ab_errors(pred_ab, truth_ab)),
            "colourfulness": metrics.colourfulness(out_rgb8),
            "truth_colourfulness": metrics.colourfulness(truth_rgb8),
            "false_colour": metrics.false_colour_share(pred_ab, truth_ab)}


def score_clip(path, clip_colorizer, limit=0, progress=None, keep=()):
    """Scores a colour clip turned to gray: the gray input itself, the per-frame
    colorization and the stabilized one (one network pass serves both), and the
    clip's own colours ("truth": E_warp and CDC only), which tell how much of a
    bound on them any faithful colorization can meet.

    Returns ({variant: means of E_warp, CDC and the image metrics}, frames scored,
    {frame index: {variant or 'truth': RGB}} for the frames in `keep`)."""
    import cv2

    from colorization import video_io
    from colorization.colorspace import lab_to_rgb8, model_to_ab, rgb_to_lab
    from colorization.image_io import to_float
    from colorization.inference import colorize_pixels

    clip = video_io.open_clip(path)
    score = ClipScore()
    sums, n, kept = {}, 0, {}
    batch = []

    def flush():
        nonlocal n
        if not batch:
            return
        abs_ = clip_colorizer.abs([f for _, f in batch], per_frame_too=True)
        for (index, frame), ab in zip(batch, abs_, strict=True):
            lab = rgb_to_lab(to_float(frame))
            truth_ab = lab[..., 1:]
            gray_lab = lab.copy()
            gray_lab[..., 1:] = 0
            outputs = {"gray": lab_to_rgb8(gray_lab)}
            h, w = frame.shape[:2]
            for variant, key in (("per-frame", "per_frame"), ("stabilized", "stabilized")):
                rgb = colorize_pixels(frame, ab[key])
                pred_ab = model_to_ab(cv2.resize(ab[key], (w, h), interpolation=cv2.INTER_LINEAR))
                outputs[variant] = rgb
                row = frame_metrics(rgb, pred_ab, frame, truth_ab)
                acc = sums.setdefault(variant, dict.fromkeys(row, 0.0))
                for k, v in row.items():
                    acc[k] += v
            gray_row = frame_metrics(outputs["gray"], np.zeros_like(truth_ab), frame, truth_ab)
            acc = sums.setdefault("gray", dict.fromkeys(gray_row, 0.0))
            for k, v in gray_row.items():
                acc[k] += v
            images = {"truth": frame, **outputs}
            score.add(frame, images)
            if index in keep:
                kept[index] = images
            n += 1
        if progress is not None:
            progress.update(len(batch))
        batch.clear()

    try:
        for index, (_, frame) in enumerate(clip.frames()):
            if limit and index >= limit:
                break
            batch.append((index, frame))
            if len(batch) >= 4:
                flush()
        flush()
    finally:
        clip.close()
    if n == 0:
        raise video_io.VideoError("has no frames")
    results = {}
    for variant, acc in sums.items():
        means = {k: v / n for k, v in acc.items()}
        truth = means.pop("truth_colourfulness")
        if truth > 1e-6:
            means["colourfulness_pct"] = 100.0 * means["colourfulness"] / truth
        results[variant] = {**score.result(variant), **means}
    results["truth"] = score.result("truth")
    return results, n, kept
