"""Colorization quality of trained models beside the gray and mean-ab baselines.

    python evaluate.py --data data/scenes --model runs/demo/model.keras --ablate-global \\
        --out reports/demo

Writes REPORT/metrics.json (means per model), REPORT/per_image.csv,
REPORT/auc_curves.png (the cumulative ab-error curves whose mean is the AuC) and
REPORT/grid.png (the same validation images under every model), and prints the
table. On the embedded scenes, the sky (whose colour only the scene class
decides) is also scored on its own: columns sky_ab_rmse and sky_auc.

--ablate-global adds each model with its global features replaced by their mean
over training images: the local-features-only ablation of the paper's claim.

    python evaluate.py --video clip.avi --model resources/models/real-photos.keras \
        --out reports/video

scores a colour clip turned to gray, per frame and stabilized (as model_transform.py
colorizes video) and the gray input itself: the warping error E_warp and the
colour distribution consistency CDC (colorization/video_metrics.py), and the image
metrics averaged over the frames; writes REPORT/video.json and REPORT/strip.jpg.
"""

import argparse
import csv
import os
import re
import sys

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import cv2
import numpy as np

from colorization import metrics
from colorization.atomic_io import replacing, save_figure_atomic
from colorization.colorspace import (
    LAB8_TO_MODEL,
    lab8_to_lab,
    lab8_to_rgb,
    lab_to_rgb8,
    model_to_ab,
    to_uint8,
)
from colorization.example_codec import AB_BIN_CENTERS, colour_prior

COLUMNS = ("ab_rmse", "auc", "auc_rebalanced", "psnr", "ssim", "colourfulness",
           "delta_colourfulness", "colourfulness_pct", "false_colour", "sky_ab_rmse", "sky_auc")
GRID_IMAGES = 6


class EvalSet:
    """Centre crops in memory: lab8, labels, names, the colour prior, optional sky masks.

    From a built dataset's split, or (`from_folder`) from a folder of colour photos."""

    def __init__(self, data_dir, split, crop_size, limit):
        import read_input

        self.summary = read_input.load_summary(data_dir)
        parts = list(read_input.eval_crops(data_dir, split, crop_size, 64, limit))
        self._set(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                  [s for p in parts for s in p[2]], dataset_prior(self.summary))
        self.sky = self._sky_masks(crop_size)

    full_size = False  # from_folder(full_size=True): the photos at their own sizes

    def _set(self, lab8, labels, sources, prior):
        """lab8: one (n, H, W, 3) array of crops, or a list of photos of any sizes."""
        self.lab8, self.labels, self.sources, self.prior = lab8, labels, sources, prior
        if isinstance(lab8, list):
            self.lab = [lab8_to_lab(x) for x in lab8]
            self.truth_rgb8 = [to_uint8(lab8_to_rgb(x)) for x in lab8]
        else:
            self.lab = lab8_to_lab(self.lab8)
            self.truth_rgb8 = np.stack([to_uint8(lab8_to_rgb(x)) for x in self.lab8])
        self.sky = None

    @classmethod
    def from_folder(cls, folder, crop_size, limit, prior=None, log=None, full_size=False):
        """The colour photos of a folder, each resized (short side) and centre-cropped
        to crop_size, or (full_size) each whole at its own size. The colour prior
        (rebalanced AuC, mean-ab baseline) is `prior`, else that of these photos
        themselves. Unusable files are named on `log`."""
        from colorization.colorspace import rgb8_to_lab8
        from colorization.example_codec import ab_histogram
        from colorization.image_io import (
            ImageError,
            is_image_name,
            load_pixels,
            resize_short_side_and_center_crop,
        )

        if not os.path.isdir(folder):
            raise EvalError(f"--images {folder}: no such folder")
        names = sorted(n for n in os.listdir(folder)
                       if is_image_name(n) and os.path.isfile(os.path.join(folder, n)))
        crops, sources = [], []
        for name in names[:limit] if limit else names:
            try:
                rgb, _ = load_pixels(os.path.join(folder, name))
            except ImageError as e:
                (log or _warn)(f"{name}: skipped: {e}")
                continue
            if rgb.dtype != np.uint8:
                rgb = (rgb >> 8).astype(np.uint8)
            rgb = rgb[..., :3] if full_size else resize_short_side_and_center_crop(rgb, crop_size)
            lab8 = rgb8_to_lab8(np.ascontiguousarray(rgb))
            if np.abs(lab8[..., 1:].astype(np.int16) - 128).max() <= 1:
                (log or _warn)(f"{name}: skipped: grayscale (no colour to compare with)")
                continue
            crops.append(lab8)
            sources.append(name)
        if not crops:
            raise EvalError(f"--images {folder}: no colour photo to evaluate")
        self = cls.__new__(cls)
        self.summary = {}
        self.full_size = full_size
        own = sum(ab_histogram(x) for x in crops).astype(np.float64)
        self._set(crops if full_size else np.stack(crops), np.full(len(crops), -1, np.int64),
                  sources, own if prior is None else prior)
        return self

    def _sky_masks(self, crop_size):
        """Re-rendered sky masks when the data is the embedded scenes, else None."""
        source = self.summary.get("source", {})
        match = re.fullmatch(r"seed (\d+)", str(source.get("root")))
        if source.get("layout") != "synthetic" or not match:
            return None
        from colorization.scenes import render_scene

        size = self.summary["stored_size"]
        top = (size - crop_size) // 2
        masks = []
        for name in self.sources:
            index = int(re.search(r"(\d+)", name).group(1))
            sky = render_scene(int(match.group(1)), index, size, with_sky=True)[2]
            masks.append(sky[top:top + crop_size, top:top + crop_size])
        return np.stack(masks)

    def mean_ab(self):
        """The training split's mean ab, from dataset.json's histogram."""
        p = self.prior / self.prior.sum()
        return np.array([(p.sum(1) * AB_BIN_CENTERS).sum(), (p.sum(0) * AB_BIN_CENTERS).sum()])


class EvalError(Exception):
    """A usage problem with the evaluated data; str() is the one-line reason."""


def _warn(message):
    print(f"evaluate.py: {message}", file=sys.stderr)


def dataset_prior(summary):
    """The training split's ab histogram (27 x 27 counts) recorded in dataset.json."""
    return colour_prior(summary)[0]


def upsample_ab(ab01, size):
    """Network output (n, h, w, 2) in [0, 1] -> ab units at size x size, bilinear."""
    return np.stack([model_to_ab(cv2.resize(np.asarray(a, np.float32), (size, size),
                                            interpolation=cv2.INTER_LINEAR)) for a in ab01])


def display_names(paths):
    """A short, distinct name per model path: its last two path parts (run/model.keras),
    more where two models would otherwise share a name."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    depth = 2
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
            return names
        depth += 1


def model_predictors(path, data_dir, eval_set, ablate, batch=32, temperature=None, name=None,
                     saturation=None):
    """{name: f(lab8 batch) -> ab (n, H, W, 2)} for a model and, if asked, its ablation
    (Iizuka et al.'s network only: the others have no global features). A
    classification head is decoded by annealed mean at `temperature`; the chroma is
    scaled by `saturation` (None: the model's own, as model_transform.py)."""
    from keras import ops

    from build_model import global_and_local_models
    from colorization import systems
    from colorization.colorspace import saturate_ab01
    from colorization.inference import load_model
    from colorization.layers import model_saturation
    from colorization.systems import decoded_ab01

    model = load_model(path)
    saturation = model_saturation(model) if saturation is None else saturation
    name = name or display_names([path])[0]
    size = eval_set.lab8.shape[1]
    network, space = systems.of_model(model)

    def gray(lab8):
        return lab8[..., :1].astype(np.float32) * LAB8_TO_MODEL  # as read_input feeds it

    def predict(lab8):
        out = []
        for i in range(0, len(lab8), batch):
            x = gray(lab8[i:i + batch])
            out.append(saturate_ab01(decoded_ab01(model(x, training=False), temperature, gray=x,
                                                  output=space), saturation))
        return upsample_ab(np.concatenate(out), size)

    predictors = {name: predict}
    if ablate and not network.has_global_features:
        print(f"evaluate.py: {name} has no global features ({network.title}'s "
              "network); nothing to ablate", file=sys.stderr)
    elif ablate:
        import read_input

        encoder, decoder = global_and_local_models(model)
        # The mean over training images; evaluating a folder without --data, over
        # the evaluated photos themselves.
        train = (next(read_input.eval_crops(data_dir, "train", size, 512, 512))[0]
                 if data_dir else eval_set.lab8)
        features = np.concatenate([ops.convert_to_numpy(encoder(gray(train[i:i + batch]),
                                                                training=False))
                                   for i in range(0, len(train), batch)])
        mean_features = features.mean(0, keepdims=True).astype(np.float32)

        def ablated(lab8):
            out = []
            for i in range(0, len(lab8), batch):
                x = gray(lab8[i:i + batch])
                g = np.repeat(mean_features, len(x), 0)
                out.append(saturate_ab01(decoded_ab01(decoder([x, g], training=False),
                                                      temperature, output=space), saturation))
            return upsample_ab(np.concatenate(out), size)

        predictors[f"{name} (global features ablated)"] = ablated
    return predictors


def full_size_predictor(path, eval_set, temperature=None, saturation=None, name=None,
                        max_side=512):
    """{name: f(photos) -> [ab (H, W, 2)]} for the set's whole photos: each colorized
    as model_transform.py does it (inference.network_input: the network sees the
    long side capped at max_side; its ab map resized bilinearly to the photo)."""
    from colorization.inference import Colorizer, load_model, network_input

    colorizer = Colorizer(load_model(path), temperature=temperature, saturation=saturation)

    def predict(photos):
        out = []
        for i, lab8 in enumerate(photos):
            h, w = lab8.shape[:2]
            ab01, _ = colorizer.predict(network_input(eval_set.truth_rgb8[i], max_side)[None])
            out.append(model_to_ab(cv2.resize(np.asarray(ab01[0], np.float32), (w, h),
                                              interpolation=cv2.INTER_LINEAR)))
        return out

    return {name or display_names([path])[0]: predict}


def baseline_predictors(eval_set):
    mean = eval_set.mean_ab().astype(np.float32)
    return {"gray (ab = 0)": lambda photos: [np.zeros(x.shape[:2] + (2,), np.float32)
                                             for x in photos],
            "mean ab (train)": lambda photos: [np.broadcast_to(mean, x.shape[:2] + (2,))
                                               for x in photos]}


def score(eval_set, pred_ab):
    """Per-image metric dicts and the mean accuracy curve of one predictor."""
    rows, curves = [], []
    for i in range(len(eval_set.lab8)):
        lab = eval_set.lab[i].copy()
        lab[..., 1:] = pred_ab[i]
        rgb8 = lab_to_rgb8(lab)
        truth_ab = eval_set.lab[i][..., 1:]
        m = metrics.image_metrics(rgb8, eval_set.truth_rgb8[i], pred_ab[i], truth_ab,
                                  eval_set.prior, AB_BIN_CENTERS)
        errors = metrics.ab_errors(pred_ab[i], truth_ab)
        curves.append(metrics.accuracy_curve(errors))
        if eval_set.sky is not None and eval_set.sky[i].any():
            sky = eval_set.sky[i]
            m["sky_ab_rmse"] = metrics.ab_rmse(pred_ab[i][sky], truth_ab[sky])
            m["sky_auc"] = metrics.auc(errors[sky.ravel()])
        rows.append(m)
    return rows, np.mean(curves, 0)


def aggregate(rows):
    keys = [k for k in COLUMNS if any(k in r for r in rows)]
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


def table(results):
    keys = [k for k in COLUMNS if any(k in r for r in results.values())]
    width = max(len(n) for n in results) + 2
    heads = {"delta_colourfulness": "d_colourful", "colourfulness": "colourful",
             "auc_rebalanced": "auc_rebal", "colourfulness_pct": "colour%",
             "false_colour": "false%"}
    cols = [max(len(heads.get(k, k)), 7) + 2 for k in keys]
    lines = ["model".ljust(width) + "".join(f"{heads.get(k, k):>{c}s}"
                                            for k, c in zip(keys, cols, strict=True))]
    for name, agg in results.items():
        lines.append(name.ljust(width) + "".join(
            f"{agg[k]:{c}.2f}" if k in agg else f"{'-':>{c}s}"
            for k, c in zip(keys, cols, strict=True)))
    return "\n".join(lines)


def plot_curves(path, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, curve in curves.items():
        ax.plot(metrics.AUC_THRESHOLDS, 100 * curve,
                label=f"{name}: AuC {100 * curve.mean():.1f}%")
    ax.set_xlabel("ab error threshold")
    ax.set_ylabel("pixels within the threshold (%)")
    ax.set_xlim(0, 150)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_grid(path, eval_set, predictions):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(GRID_IMAGES, len(eval_set.lab8))
    # Spread the shown images over the classes when there are labels.
    order = np.argsort(eval_set.labels, kind="stable")
    shown = order[np.linspace(0, len(order) - 1, n).astype(int)]
    cols = ["input (L)", "ground truth", *predictions]
    fig, axes = plt.subplots(n, len(cols), figsize=(2.1 * len(cols), 2.2 * n), squeeze=False)
    names = eval_set.summary.get("class_names") or []
    for r, i in enumerate(shown):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            ax.axis("off")
            if col == "input (L)":
                ax.imshow(eval_set.lab8[i][..., 0], cmap="gray", vmin=0, vmax=255)
                if names:
                    ax.text(2, 12, names[eval_set.labels[i]], color="yellow", fontsize=6)
            elif col == "ground truth":
                ax.imshow(eval_set.truth_rgb8[i])
            else:
                lab = eval_set.lab[i].copy()
                lab[..., 1:] = predictions[col][i]
                ax.imshow(lab_to_rgb8(lab))
            if r == 0:
                ax.set_title(col if len(col) < 28 else col[:26] + "...", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    save_figure_atomic(fig, path)


def evaluate(data_dir, models, out, split="val", ablate_global=False, limit=500,
             crop_size=224, temperature=None, images=None, saturation=None, full_size=False):
    """Scores every model and baseline; writes the report files; returns the means.

    With `images` (a folder of colour photos) those photos are scored instead of
    the dataset's split, as centre crops or (full_size) whole, colorized as
    model_transform.py does; `data_dir`, if given too, supplies the training
    colour prior (rebalanced AuC, mean-ab baseline) and the ablation's mean
    features."""
    from colorization.atomic_io import write_json_atomic

    if full_size and (not images or ablate_global):
        raise EvalError("--full-size scores a folder of photos (--images), without "
                        "--ablate-global")
    if images:
        prior = None
        if data_dir:
            import read_input
            prior = dataset_prior(read_input.load_summary(data_dir))
        eval_set = EvalSet.from_folder(images, crop_size, limit, prior, full_size=full_size)
    else:
        eval_set = EvalSet(data_dir, split, crop_size, limit)
    predictors = baseline_predictors(eval_set)
    for path, name in zip(models, display_names(models), strict=True):
        if full_size:
            predictors.update(full_size_predictor(path, eval_set, temperature, saturation, name))
            continue
        predictors.update(model_predictors(path, data_dir, eval_set, ablate_global, name=name,
                                           temperature=temperature, saturation=saturation))
    os.makedirs(out, exist_ok=True)
    results, curves, predictions, per_image = {}, {}, {}, []
    for name, predict in predictors.items():
        pred = predict(eval_set.lab8)
        predictions[name] = pred
        rows, curves[name] = score(eval_set, pred)
        results[name] = aggregate(rows)
        for i, r in enumerate(rows):
            per_image.append({"model": name, "image": eval_set.sources[i],
                              "label": int(eval_set.labels[i]), **r})
    write_json_atomic(os.path.join(out, "metrics.json"), {
        "data": images or data_dir, "split": "folder" if images else split,
        "prior": ("the evaluated photos" if images and not data_dir else "training split"),
        "images": len(eval_set.lab8), "crop": "full size" if full_size else crop_size,
        "psnr_cap": metrics.PSNR_CAP, "sky_scored": eval_set.sky is not None,
        "models": results})
    with replacing(os.path.join(out, "per_image.csv")) as tmp, \
            open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["model", "image", "label", *COLUMNS], restval="")
        writer.writeheader()
        writer.writerows(per_image)
    plot_curves(os.path.join(out, "auc_curves.png"), curves)
    plot_grid(os.path.join(out, "grid.png"), eval_set, predictions)
    return results, len(eval_set.lab8)


VIDEO_COLUMNS = ("e_warp", "cdc", "cdc_1", "cdc_2", "cdc_4", "ab_rmse", "auc", "colourfulness",
                 "colourfulness_pct", "false_colour")


def video_table(results):
    heads = {"colourfulness": "colourful", "colourfulness_pct": "colour%",
             "false_colour": "false%", "e_warp": "E_warp*1e3"}
    lines = ["output".ljust(12) + "".join(f"{heads.get(k, k):>12s}" for k in VIDEO_COLUMNS)]
    for name, row in results.items():
        cells = []
        for k in VIDEO_COLUMNS:
            v = row.get(k)
            scale = 1e3 if k == "e_warp" else 1.0
            cells.append(f"{'-':>12s}" if v is None or np.isnan(v) else
                         f"{v * scale:12.4f}" if k.startswith("cdc") else f"{v * scale:12.2f}")
        lines.append(name.ljust(12) + "".join(cells))
    return "\n".join(lines)


def plot_strip(path, kept, title):
    """Rows truth, gray input, per-frame, stabilized; columns the kept frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ("truth", "gray", "per-frame", "stabilized")
    indices = sorted(kept)
    h, w = kept[indices[0]]["truth"].shape[:2]
    fig, axes = plt.subplots(len(rows), len(indices), squeeze=False,
                             figsize=(2.6 * len(indices), 2.6 * len(rows) * h / w + 0.6))
    for r, row in enumerate(rows):
        for c, index in enumerate(indices):
            ax = axes[r][c]
            ax.imshow(kept[index][row])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {index}", fontsize=9)
            if c == 0:
                ax.set_ylabel(row, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=80)


def evaluate_video(clips, model_path, out, limit=0, max_side=512, strip_frames=5):
    """Scores each clip with the model; writes video.json and one strip per clip;
    returns {clip: {output: metrics}} and the frames scored per clip."""
    from tqdm import tqdm

    from colorization.atomic_io import write_json_atomic
    from colorization.inference import Colorizer, load_model
    from colorization.video import ClipColorizer
    from colorization.video_io import open_clip
    from colorization.video_metrics import score_clip

    colorizer = Colorizer(load_model(model_path), split_global=True)
    os.makedirs(out, exist_ok=True)
    report, frames = {}, {}
    for clip in clips:
        total = open_clip(clip)
        count = min(total.frame_count, limit) if limit else total.frame_count
        total.close()
        keep = {round(i * (count - 1) / max(1, strip_frames - 1)) for i in range(strip_frames)} \
            if count else set()
        bar = tqdm(total=count or None, unit="frame", desc=os.path.basename(clip),
                   file=sys.stderr, dynamic_ncols=True)
        try:
            results, n, kept = score_clip(clip, ClipColorizer(colorizer, max_side), limit,
                                          bar, keep)
        finally:
            bar.close()
        report[clip], frames[clip] = results, n
        name = os.path.splitext(os.path.basename(clip))[0]
        if kept:
            plot_strip(os.path.join(out, f"strip_{name}.jpg"), kept,
                       f"{os.path.basename(clip)}: {n} frames, {os.path.basename(model_path)}")
    write_json_atomic(os.path.join(out, "video.json"), {
        "model": model_path, "max_side": max_side, "flow": "OpenCV DIS (medium preset)",
        "e_warp": "Lai et al. 2018, RGB in [0, 1]; CDC: TCVC, JS divergence in nats",
        "frames": frames, "clips": report})
    return report, frames


def video_main(args):
    from colorization.inference import ModelError
    from colorization.video_io import VideoError

    model = args.model[0] if args.model else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "resources", "models", "real-photos.keras")
    try:
        report, frames = evaluate_video(args.video, model, args.out, args.limit_frames)
    except (ModelError, VideoError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 1
    for clip, results in report.items():
        print(f"{clip}: {frames[clip]} frames turned to gray, colorized by {model}; E_warp "
              "(x 1e-3) and CDC: lower is steadier; AuC in %")
        print(video_table(results))
    print(f"report: {args.out}/video.json, strip_*.jpg")
    return 0


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quiet.add_verbose_flag(p)
    p.add_argument("--data", help="dataset folder written by input_create.py (its --split is "
                   "scored; with --images, its training colour prior is used)")
    p.add_argument("--images", metavar="DIR",
                   help="score a folder of colour photos (224 px centre crops) instead")
    p.add_argument("--full-size", action="store_true",
                   help="with --images: score each photo whole, at its own size, colorized "
                        "as model_transform.py does (the network sees at most 512 px)")
    p.add_argument("--video", action="append", default=[], metavar="CLIP",
                   help="score a colour clip turned to gray, per frame and stabilized "
                        "(repeat for several; default model: the shipped one)")
    p.add_argument("--limit-frames", type=int, default=0, metavar="N",
                   help="with --video: score the first N frames (default: all)")
    p.add_argument("--split", default="val")
    p.add_argument("--model", action="append", default=[], metavar="M.keras",
                   help="a trained model (repeat for several)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--ablate-global", action="store_true",
                   help="also score each model with its global features replaced by their "
                        "training-set mean")
    p.add_argument("--limit", type=int, default=500, help="at most this many images")
    p.add_argument("--temperature", type=float,
                   help="annealed-mean temperature for classification-head models (default "
                        "0.38, Zhang et al.'s)")
    p.add_argument("--saturation", type=float, metavar="S",
                   help="the models' chroma scaled by S, as model_transform.py --saturation "
                        "(default: each model's own)")
    return p


def check_args(p, args):
    """Usage errors (exit 2) before anything is loaded."""
    if args.temperature is not None and not args.temperature > 0:
        p.error("--temperature must be > 0")
    if args.saturation is not None and not 0.0 <= args.saturation <= 2.0:
        p.error("--saturation must be between 0 and 2")
    if args.limit < 1:
        p.error("--limit must be at least 1")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out} is a file; the report needs a folder")
    if not args.video and not args.data and not args.images:
        p.error("give --data (a built dataset), --images (a folder of colour photos) or "
                "--video (a colour clip)")
    for path in args.model:
        if not os.path.isfile(path):
            p.exit(2, f"evaluate.py: error: {path}: model file not found\n")


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    check_args(p, args)
    if args.video:
        return video_main(args)
    try:
        results, n = evaluate(args.data, args.model, args.out, args.split, args.ablate_global,
                              args.limit, temperature=args.temperature, images=args.images,
                              saturation=args.saturation, full_size=args.full_size)
    except Exception as e:
        code = failure_status(e, args.data)  # one line for what the user can fix
        if code is None:
            raise
        return code
    print_summary(args, results, n)
    return 0


def failure_status(error, data):
    """The one-line message and exit status of an evaluation that failed for a reason
    the user can fix; None for anything else (the caller raises it)."""
    import tensorflow as tf

    from colorization.inference import ModelError
    from read_input import DatasetError, record_error_text

    if isinstance(error, (DatasetError, ModelError, EvalError)):
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    if not isinstance(error, (tf.errors.DataLossError, tf.errors.InvalidArgumentError)):
        return None
    print(f"evaluate.py: error: a record of {data} cannot be read "
          f"({record_error_text(error)}); `python read_input.py {data} --verify` names the "
          "damaged shard", file=sys.stderr)
    return 1


def print_summary(args, results, n):
    scored = f"photos of {args.images}" if args.images else f"{args.split} images of {args.data}"
    view = "full size" if args.full_size else "224x224 centre crops"
    print(f"{n} {scored} ({view}); AuC in %, "
          f"ab errors in ab units, PSNR capped at {metrics.PSNR_CAP:g} dB")
    print(table(results))
    print(f"report: {args.out}/metrics.json, per_image.csv, auc_curves.png, grid.png")

if __name__ == "__main__":
    sys.exit(interrupts.run(main, "evaluate.py",
                            "the report is not complete; the same command starts again"))
