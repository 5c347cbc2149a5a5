"""Colorizes photos of any size with a trained model, one file or thousands.

    python model_transform.py photo.jpg                      # -> photo_color.jpg
    python model_transform.py old_photos/ --recursive --out colorized/
    python model_transform.py street.jpg --reference sunset.jpg --compare --top-k 3
    python model_transform.py film.mp4                       # -> film_color.mp4
    python model_transform.py scans/ --frames                # numbered frames -> scans_color/

The output has the input's size, its own full-resolution L channel and its alpha;
the network sees the image with its long side capped at --max-side (chroma is
low-frequency, so this costs little quality and bounds time and memory).
Colour inputs are converted to gray first, so colour photos can be recolorized.

A video (any container and codec FFmpeg reads) keeps its size, frame rate, frame
count, timestamps and audio; each frame its own L. It is stabilized across frames
(colorization/temporal.py; --per-frame for the plain per-frame result), written in
segments so that the same command, run again after a kill, continues where it
stopped, and the final file appears only when complete.

Exit status: 0 all done, 1 some input failed (each named on stderr with its
reason; the others are still done), 2 usage error.
"""

import argparse
import glob
import os
import stat
import sys

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np

from colorization.atomic_io import save_figure_atomic, write_bytes_atomic
from colorization.image_io import (
    ImageError,
    check_pixel_limit,
    decode_pixels,
    is_image_name,
    read_bytes,
)
from config import InferenceConfig

OUTPUT_SUFFIX = "_color"
COMPARE_SUFFIX = OUTPUT_SUFFIX + "_compare"  # --compare figures are outputs too
MAIN_JOB = ("python input_create.py --synthetic 3000 --out data/scenes --val-fraction 0.05 && "
            "python model_train.py --preset demo --data data/scenes --run-dir runs/demo")
# Images held at once while waiting for same-size partners (a batch).
BATCH_SIZE = 8
BATCH_PIXELS = 16_000_000


class UsageError(Exception):
    pass


# Trained on about 250 real photos from Debian and PyPI packages (resources/models/
# real-photos.md says how); used when no --model is given and no run is trained here.
SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "models",
                             "real-photos.keras")


def default_model():
    """(path, why): the newest runs/*/model.keras, else the shipped real-photo model,
    else UsageError saying how to train one."""
    found = sorted(glob.glob(os.path.join("runs", "*", "model.keras")), key=os.path.getmtime)
    if found:
        return found[-1], ("your newest trained run; --model "
                           f"{os.path.relpath(SHIPPED_MODEL)} for the shipped real-photo model")
    if os.path.isfile(SHIPPED_MODEL):
        return SHIPPED_MODEL, "the shipped real-photo model: no runs/*/model.keras here"
    raise UsageError("no trained model found (runs/*/model.keras) and the shipped model "
                     f"{SHIPPED_MODEL} is missing; pass --model PATH or train the demo model "
                     f"first:\n  {MAIN_JOB}")


def named_model(model):
    """--model as given, or a published release fetched by name (convert_model.py
    --fetch NAME keeps it in the cache); UsageError saying how to fetch a missing one."""
    from colorization import fetch

    if os.path.exists(model) or model not in fetch.RELEASES:
        return model
    path = fetch.model_path(model)
    if not os.path.isfile(path):
        release = fetch.RELEASES[model]
        raise UsageError(f"{model} is not fetched yet; fetch it once ({release.size_mb:.0f} MB, "
                         f"licence {release.licence}):\n  python convert_model.py --fetch "
                         f"{model}")
    return path


def walk_images(folder, recursive):
    """Relative paths of the image files under folder, each real file once: symbolic
    links are followed, but a folder already visited (a link cycle, or two links to
    one place) is not entered again, and a file reached twice is listed once."""
    seen_dirs, seen_files, found = set(), set(), []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.realpath(os.path.join(dirpath, d)) not in seen_dirs)
        if not recursive:
            dirnames[:] = []
        stems = {os.path.splitext(n)[0] for n in filenames if _is_input_name(n)}
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not _is_input_name(name) or _our_output(name, filenames, stems):
                continue
            if not _regular_file(path) or os.path.realpath(path) in seen_files:
                continue
            seen_files.add(os.path.realpath(path))
            found.append(path)
    return found


def _is_input_name(name):
    from colorization.video_io import is_video_name

    return is_image_name(name) or is_video_name(name)


def _our_output(name, names, stems):
    """Whether `name` is what a run wrote beside its input: X_color.EXT beside X.EXT,
    or X_color_compare.png beside an image X.*. A user's own water_color.png with
    no water.png beside it is a photo like any other."""
    stem, ext = os.path.splitext(name)
    if stem.endswith(COMPARE_SUFFIX):
        return stem[: -len(COMPARE_SUFFIX)] in stems
    return stem.endswith(OUTPUT_SUFFIX) and stem[: -len(OUTPUT_SUFFIX)] + ext in names


def _regular_file(path):
    """Only regular files are read: a FIFO or a device (/dev/zero) would hang or
    never end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def collect_inputs(paths, recursive, frames=False):
    """[(path, relative name for --out DIR)], and [(path, reason)] for unusable ones.
    frames: each folder is one clip of numbered frames."""
    items, failed = [], []
    for path in paths:
        if os.path.isdir(path) and frames:
            items.append((path, os.path.basename(os.path.normpath(path))))
        elif os.path.isdir(path):
            items += [(f, os.path.relpath(f, path)) for f in walk_images(path, recursive)]
        elif not os.path.lexists(path):
            failed.append((path, "file not found"))
        elif not _regular_file(path):
            failed.append((path, "not a regular file (a folder, FIFO or device is not read)"))
        else:
            items.append((path, os.path.basename(path)))
    return items, failed


# Containers the colorized video is written in as they are (H.264 fits them);
# another input's result is an .mp4.
VIDEO_OUTPUTS = (".mp4", ".m4v", ".mov", ".mkv", ".avi")


def output_path(path, rel, out, single):
    """Where the colorized `path` goes: beside it, under --out DIR, or --out FILE."""
    from colorization.video_io import is_video_name

    if os.path.isdir(path):  # a frame folder: a folder of frames beside it
        rel = os.path.normpath(path) if out is None else rel
        return os.path.join(out or "", os.path.normpath(rel) + OUTPUT_SUFFIX)
    stem, ext = os.path.splitext(rel)
    if out is None:
        stem, ext = os.path.splitext(path)
    if is_video_name(path) and ext.lower() not in VIDEO_OUTPUTS:
        ext = ".mp4"
    if out is None:
        return stem + OUTPUT_SUFFIX + ext
    if single and _is_input_name(out) and not os.path.isdir(out):
        return out
    return os.path.join(out, stem + OUTPUT_SUFFIX + ext)


def encode_output(path, rgb, alpha, in_place=False):
    """Encoded bytes (a uint8 array) of the RGB (+ alpha) result in the format of
    `path`'s extension. in_place: the channels of `rgb` are swapped to BGR in place
    for the encoder and back after it, instead of into a second full-size copy."""
    import cv2

    ext = os.path.splitext(path)[1].lower()
    given = rgb
    if rgb.dtype == np.uint16 and ext not in (".png", ".tif", ".tiff"):
        rgb = (rgb // 257).astype(np.uint8)  # our own array: swapped in place, not back
    swapped = rgb if (in_place or rgb is not given) and rgb.flags.c_contiguous else None
    try:
        return _encode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=swapped), alpha)
    finally:
        if swapped is given:
            cv2.cvtColor(swapped, cv2.COLOR_BGR2RGB, dst=swapped)


def _encode(ext, bgr, alpha):
    import cv2

    if alpha is not None and ext in (".png", ".tif", ".tiff", ".webp"):
        if alpha.dtype != bgr.dtype:
            alpha = (alpha // 257).astype(np.uint8) if alpha.dtype == np.uint16 else (
                alpha.astype(np.uint16) * 257)
        bgr = np.dstack([bgr, alpha])
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error:  # no encoder for this extension
        ok = False
    if not ok:
        raise ImageError(f"cannot write the result as {ext or 'a file without an extension'} "
                         "(give --out a name ending .jpg, .png, .tif, .bmp or .webp)")
    return buf  # not .tobytes(): that would be a second copy of the encoded file


def write_compare(path, pixels, result, was_colour):
    """A side-by-side figure: input (gray), colorized, and the original if it had colour."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorization.inference import lightness

    def shrink(img, side=768):
        s = side / max(img.shape[:2])
        if s >= 1:
            return img
        return cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                          interpolation=cv2.INTER_AREA)

    def as8(img):
        return (img // 257).astype(np.uint8) if img.dtype == np.uint16 else img

    panels = [("input (gray)", shrink(lightness(pixels)), "gray"),
              ("colorized", shrink(as8(result)), None)]
    if was_colour:
        panels.append(("original colour", shrink(as8(pixels)), None))
    h, w = panels[0][1].shape[:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4 * h / w + 0.5))
    for ax, (title, img, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap else None)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)


class Job:
    def __init__(self, path, dest, pixels, alpha, net_input):
        self.path, self.dest, self.pixels, self.alpha = path, dest, pixels, alpha
        self.net_input = net_input


def load_job(path, dest, max_pixels, max_side):
    """The decoded input and what the network sees, or ImageError with the reason."""
    from colorization.inference import network_input

    data = read_bytes(path)
    check_pixel_limit(data, max_pixels)
    pixels, alpha = decode_pixels(data, keep_alpha=True)
    h, w = pixels.shape[:2]
    if max_pixels and h * w > max_pixels:
        raise ImageError(f"{w}x{h} = {h * w:,} pixels is over the limit of "
                         f"{max_pixels:,} (--max-pixels)")
    return Job(path, dest, pixels, alpha, network_input(pixels, max_side))


def finish_job(job, ab, compare=False):
    """Joins the job's own L with the predicted ab and writes the result (and the
    --compare figure); returns the result (RGB as written)."""
    from colorization.inference import colorize_pixels

    result = colorize_pixels(job.pixels, ab, job.pixels.dtype if job.pixels.dtype == np.uint16
                             else np.uint8)
    pixels, alpha = job.pixels, job.alpha
    # The decoded input is let go as soon as nothing needs it, so a large photo holds
    # about two full-size images at a time (input and result, then result and the
    # encoder's buffer) rather than three.
    job.pixels = job.alpha = None
    if not compare:
        pixels = None
    data = encode_output(job.dest, result, alpha, in_place=True)
    os.makedirs(os.path.dirname(os.path.abspath(job.dest)), exist_ok=True)
    write_bytes_atomic(job.dest, data)
    del data
    if compare:
        was_colour = not (np.array_equal(pixels[..., 0], pixels[..., 1])
                          and np.array_equal(pixels[..., 1], pixels[..., 2]))
        write_compare(compare_path(job.dest), pixels, result, was_colour)
    return result


def top_k_line(job, probs, names, k):
    top = np.argsort(probs)[::-1][:k]
    return f"{job.path}: " + ", ".join(f"{names[i]} {probs[i]:.0%}" for i in top)


class Batches:
    """Holds loaded jobs until a batch is full (same network size, at most
    BATCH_SIZE images and BATCH_PIXELS pixels), then colorizes and writes it.
    Counts what was done; reports each failure through `fail(path, reason)`."""

    def __init__(self, colorizer, reference, fail, on_done, compare=False, top_k=0, names=()):
        self.colorizer, self.reference, self.fail, self.on_done = (colorizer, reference, fail,
                                                                   on_done)
        self.compare, self.top_k, self.names = compare, top_k, names
        self.pending, self.done = [], 0

    def add(self, job):
        if self.pending and (self.pending[0].net_input.shape != job.net_input.shape
                             or len(self.pending) >= BATCH_SIZE
                             or sum(j.pixels.shape[0] * j.pixels.shape[1]
                                    for j in self.pending) > BATCH_PIXELS):
            self.flush()
        self.pending.append(job)

    def flush(self):
        jobs, self.pending = self.pending, []
        if not jobs:
            return
        try:
            ab, probs = self.colorizer.predict(np.stack([j.net_input for j in jobs]),
                                               self.reference)
        except Exception as e:  # noqa: BLE001 (e.g. out of memory at --max-side 0)
            for job in jobs:
                self.fail(job.path, f"model failed: {str(e).splitlines()[0][:160]}")
                self.on_done()
            return
        for k, job in enumerate(jobs):
            try:
                finish_job(job, ab[k], self.compare)
                self.done += 1
                if self.top_k and probs is not None:
                    from tqdm import tqdm

                    tqdm.write(top_k_line(job, probs[k], self.names, self.top_k))
            except (ImageError, OSError) as e:
                self.fail(job.path, str(e))
            self.on_done()


def plan_outputs(items, out, single, overwrite, compare=False):
    """([(input, output)] to do, [(input, reason)] refused, how many skipped).

    No two inputs of one run get the same output, no output (or --compare figure)
    is an input of the run, and an existing file is replaced only with --overwrite."""
    todo, refused, skipped = [], [], 0
    inputs = {os.path.realpath(path): path for path, _ in items}
    taken = {}
    for path, rel in items:
        dest = output_path(path, rel, out, single)
        written = [dest] + ([compare_path(dest)] if compare else [])
        real = [os.path.realpath(w) for w in written]
        clash = next((inputs[r] for r in real if r in inputs), None)
        if clash is not None:
            what = "the input itself" if clash == path else f"another input, {clash}"
            target = written[real.index(os.path.realpath(clash))]
            refused.append((path, f"the output {target} would overwrite {what}"))
        elif any(r in taken for r in real):
            other = next(taken[r] for r in real if r in taken)
            reason = (f"its output {dest} is also {other}'s; colorize them into different "
                      "--out folders")
            refused.append((path, reason))
        elif any(os.path.exists(w) for w in written) and not overwrite:
            skipped += 1
        else:
            todo.append((path, dest))
        taken.update({r: path for r in real})
    return todo, refused, skipped


def compare_path(dest):
    return os.path.splitext(dest)[0] + "_compare.png"


def prepare_model(args, model_path, video=False):
    """(Colorizer, reference network input or None, class names); raises UsageError,
    ModelError or ImageError (of the --reference image)."""
    from colorization import systems
    from colorization.inference import Colorizer, class_names_for, load_model, network_input

    model = load_model(model_path)
    network, _ = systems.of_model(model)
    if args.reference and not network.has_global_features:
        raise UsageError(f"--reference needs a model with global features; {model_path} "
                         f"is {network.title}'s network, which has none")
    reference = None
    if args.reference:
        ref_data = read_bytes(args.reference)
        check_pixel_limit(ref_data, args.max_pixels)  # before decoding, as for the inputs
        ref_pixels, _ = decode_pixels(ref_data)
        reference = network_input(ref_pixels, args.max_side)
    colorizer = Colorizer(model, with_reference=reference is not None,
                          temperature=args.temperature, saturation=args.saturation,
                          split_global=video and not args.per_frame)
    return colorizer, reference, class_names_for(model_path, colorizer.num_classes, model)


def run(args):
    """Colorizes every input; returns the exit status."""
    from tqdm import tqdm

    from colorization.inference import ModelError

    items, failed = collect_inputs(args.inputs, args.recursive, args.frames)
    if not items and not failed:
        raise UsageError("no images found in " + ", ".join(args.inputs) +
                         ("" if args.recursive else " (use --recursive for sub-folders)"))
    single = len(args.inputs) == 1 and not os.path.isdir(args.inputs[0])
    if args.out and not single and is_image_name(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} looks like a file, but there are several inputs; "
                         "give a folder")
    if args.model:
        model_path = named_model(args.model)
    else:
        model_path, why = default_model()
        print(f"model: {model_path} ({why})", file=sys.stderr)
    from colorization.video_io import is_video_name

    clips = [(p, r) for p, r in items if os.path.isdir(p) or is_video_name(p)]
    photos = [(p, r) for p, r in items if (p, r) not in clips]
    try:
        colorizer, reference, names = prepare_model(args, model_path, video=bool(clips))
    except ModelError as e:
        print(f"model_transform.py: {model_path}: {e}", file=sys.stderr)
        return 1
    except ImageError as e:
        print(f"model_transform.py: {args.reference}: {e} (the --reference image)",
              file=sys.stderr)
        return 1
    todo, refused, skipped = plan_outputs(photos, args.out, single, args.overwrite, args.compare)
    clip_todo, clip_refused, clip_skipped = plan_outputs(clips, args.out, single, args.overwrite)
    failed += refused + clip_refused
    skipped += clip_skipped
    for path, reason in failed:
        print(f"model_transform.py: {path}: {reason}", file=sys.stderr)

    def fail(path, reason):
        failed.append((path, reason))
        tqdm.write(f"model_transform.py: {path}: {reason}", file=sys.stderr)

    done = colorize_photos(args, todo, colorizer, reference, names, fail)
    clips_done = colorize_clips(args, clip_todo, colorizer, reference, model_path, fail)
    where = f" into {args.out}" if args.out else ""
    what = f"{done} image(s)" + (f" and {clips_done} clip(s)" if clips else "")
    print(f"colorized {what}{where}; {len(failed)} failed"
          + (f"; {skipped} skipped (output exists, use --overwrite)" if skipped else ""),
          file=sys.stderr)
    return 1 if failed else 0


def colorize_photos(args, todo, colorizer, reference, names, fail):
    """Each (photo, output) of `todo` decoded, colorized in batches and written, with a
    progress bar; a photo that fails is reported through `fail(path, reason)`.
    Returns how many were written."""
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", disable=len(todo) < 2, file=sys.stderr)
    batches = Batches(colorizer, reference, fail, lambda: bar.update(1), args.compare,
                      args.top_k, names)
    for path, dest in todo:
        try:
            batches.add(load_job(path, dest, args.max_pixels, args.max_side))
        except ImageError as e:
            fail(path, str(e))
            bar.update(1)
    batches.flush()
    bar.close()
    return batches.done


def colorize_clips(args, todo, colorizer, reference, model_path, fail):
    """Colorizes each clip in turn (a bar of frames each); returns how many were done."""
    from tqdm import tqdm

    from colorization.video import ClipColorizer, colorize_clip, fingerprint
    from colorization.video_io import Encoding, VideoError

    options = {"max_side": args.max_side, "temperature": args.temperature,
               "saturation": args.saturation, "per_frame": args.per_frame,
               "global": not args.no_global_smoothing, "flow": not args.no_flow,
               "crf": args.crf, "reference": args.reference and fingerprint(
                   args.reference, model_path, {})["input"]}
    done = 0
    for path, dest in todo:
        clip_colorizer = ClipColorizer(colorizer, args.max_side, stabilize=not args.per_frame,
                                       smooth_global=not args.no_global_smoothing,
                                       flow_blend=not args.no_flow, reference=reference)
        bar = tqdm(unit="frame", desc=os.path.basename(os.path.normpath(path)), file=sys.stderr,
                   dynamic_ncols=True)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
            result = colorize_clip(path, dest, clip_colorizer,
                                   fingerprint(path, model_path, options),
                                   Encoding(args.crf), args.segment_frames, progress=bar)
        except (VideoError, ImageError, OSError) as e:
            bar.close()
            fail(path, str(e))
            continue
        bar.close()
        done += 1
        resumed = (f", continued from frame {result['resumed_from']}"
                   if result["resumed_from"] else "")
        audio = f", audio {result['audio']}" if result["audio"] else ""
        print(f"{path} -> {dest}: {result['frames']} frames{resumed}{audio}", file=sys.stderr)
    return done


def parse_args(argv):
    defaults = InferenceConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quiet.add_verbose_flag(p)
    p.add_argument("inputs", nargs="+", metavar="IMG|DIR", help="images and folders")
    p.add_argument("--model", help="trained .keras model, or the name of a published release "
                   "fetched with convert_model.py --fetch (iizuka2016, zhang2016, ...; default: "
                   "the newest runs/*/model.keras, else the shipped real-photo model)")
    p.add_argument("--out", help="output folder (mirrors the input tree), or a file name for "
                                 "a single input (default: NAME_color.EXT beside each input)")
    p.add_argument("--max-side", type=int, default=defaults.max_side,
                   help="cap of the long side the network sees (default %(default)s; 0 = full "
                        "resolution)")
    p.add_argument("--max-pixels", type=int, default=defaults.max_pixels,
                   help="refuse images with more pixels (default %(default)s; 0 = no limit)")
    p.add_argument("--reference", metavar="REF_IMG",
                   help="take the global features (time of day, season) from this image")
    p.add_argument("--temperature", type=float, default=defaults.temperature,
                   help="annealed-mean temperature for a model with a classification head "
                        "(Zhang et al.; default 0.38; 1 = the mean of the predicted "
                        "colour distribution, towards 0 its mode)")
    p.add_argument("--saturation", type=float, metavar="S",
                   help="scale the predicted colours' chroma: 0 = gray, 1 = the network's "
                        "own, up to 2 (default: the value the model carries, chosen on a "
                        "validation set; 1 for a model that carries none)")
    p.add_argument("--compare", action="store_true",
                   help="also write NAME_color_compare.png: input, result and original")
    p.add_argument("--top-k", type=int, default=0, metavar="N",
                   help="print the N most likely scene classes of each image")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    v = p.add_argument_group("video")
    v.add_argument("--frames", action="store_true",
                   help="each folder given is one clip of numbered frames (-> FOLDER_color/)")
    v.add_argument("--per-frame", action="store_true",
                   help="colorize each frame on its own (no stabilization: the baseline)")
    v.add_argument("--no-global-smoothing", action="store_true",
                   help="do not smooth the global features within a shot (networks that have them)")
    v.add_argument("--no-flow", action="store_true",
                   help="do not blend in the previous frame's colours along the optical flow")
    v.add_argument("--crf", type=int, metavar="N",
                   help="H.264 4:2:0 at this quality (18 is visually lossless) for a small "
                        "file any player plays (default: lossless RGB, every frame exact)")
    v.add_argument("--segment-frames", type=int, default=250, metavar="N",
                   help="frames per resumable segment (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = p.parse_args(argv)
    if args.crf is not None and not 0 <= args.crf <= 51:
        p.error("--crf must be between 0 and 51")
    if args.segment_frames < 1:
        p.error("--segment-frames must be at least 1")
    if args.max_side < 0 or args.max_pixels < 0 or args.top_k < 0:
        p.error("--max-side, --max-pixels and --top-k must be >= 0")
    if args.temperature is not None and not args.temperature > 0:
        p.error("--temperature must be > 0")
    if args.saturation is not None and not 0.0 <= args.saturation <= 2.0:
        p.error("--saturation must be between 0 and 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"model_transform.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through interrupts.run
        code = interrupts.handled(e)
        print("model_transform.py: interrupted; finished outputs are complete, the rest were "
              "not written (a clip continues from its last finished segment when the same "
              "command is run again)", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "model_transform.py"))
