"""A local web page to colorize photos: drop or pick photos, see each beside its
colorization, download the results at full resolution.

    python serve.py                      # http://127.0.0.1:8000, the default model
    python serve.py --model runs/demo/model.keras --port 8080

Built with Gradio (requirements-extra.txt), what colorization demos use. It binds
to 127.0.0.1 unless --host says otherwise, refuses uploads over --max-upload-mb
and photos over --max-pixels (read from the header, before decoding), and writes
only inside its own temporary folder (uploads and results), removed on exit.
The colorization is model_transform.py's: the same model choice, the photo's own
L at full resolution joined with the predicted colour.
"""

import argparse
import os
import shutil
import sys
import tempfile

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np

from config import InferenceConfig

MAX_UPLOAD_MB = 50
MAX_PIXELS = 50_000_000  # a page serves strangers' files: lower than the command line's
PREVIEW_SIDE = 1024  # the slider shows at most this long side; downloads are full size


class Colorize:
    """Colorizes uploaded files into `folder`: (previews for the slider, result files,
    one message per photo)."""

    def __init__(self, model_path, folder, max_side, max_pixels):
        from colorization.inference import Colorizer, load_model

        self.model = load_model(model_path)
        self.colorizer = Colorizer(self.model)
        self.folder, self.max_side, self.max_pixels = folder, max_side, max_pixels

    def one(self, path, index, folder):
        """(gray preview, colour preview, result path in folder) of one upload, or
        ImageError."""
        import model_transform
        from colorization.colorspace import lab_to_rgb, to_uint8
        from colorization.inference import lightness

        name = os.path.splitext(os.path.basename(path))[0][:80] or "photo"
        ext = ".png" if path.lower().endswith((".png", ".tif", ".tiff", ".webp")) else ".jpg"
        dest = os.path.join(folder, f"{index:03d}-{name}_color{ext}")
        job = model_transform.load_job(path, dest, self.max_pixels, self.max_side)
        # The gray the network sees (the photo's L, as a gray sRGB picture), at preview size.
        light = lightness(preview(job.pixels)) * 100.0
        zeros = np.zeros_like(light)
        gray = to_uint8(lab_to_rgb(np.stack([light, zeros, zeros], -1)))
        ab, _ = self.colorizer.predict(job.net_input[None])
        result = model_transform.finish_job(job, ab[0])  # writes dest, full resolution
        return gray, preview(result), dest

    def __call__(self, files, progress=None, saturation=None):
        from colorization.image_io import ImageError

        if saturation is not None:  # the page's slider (0 gray, 1 the network's own colours)
            self.colorizer.saturation = float(saturation)
        pairs, results, lines = [], [], []
        files = list(files or [])
        # Each request writes into a folder of its own: two visitors who upload a
        # "photo.jpg" each used to get one file, replaced under the first one's
        # download (cut short, or the other visitor's picture).
        folder = tempfile.mkdtemp(prefix="request-", dir=self.folder) if files else None
        for i, path in enumerate(files):
            name = os.path.basename(path)
            if progress is not None:
                progress((i, len(files)), desc=f"colorizing {name}")
            try:
                gray, colour, dest = self.one(path, i, folder)
            except ImageError as e:
                lines.append(f"**{name}**: not colorized: {e}")
                continue
            pairs.append((gray, colour))
            results.append(dest)
            lines.append(f"**{name}**: colorized ({os.path.basename(dest)})")
        return pairs, results, "\n\n".join(lines) or "No photos given."


def preview(image):
    """uint8 RGB with the long side at most PREVIEW_SIDE (16-bit brought to 8)."""
    import cv2

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    s = PREVIEW_SIDE / max(image.shape[:2])
    if s < 1:
        image = cv2.resize(image, (max(1, round(image.shape[1] * s)),
                                   max(1, round(image.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
    return image


def build_page(colorize, model_line):
    import gradio as gr

    def run(files, saturation, progress=gr.Progress()):  # noqa: B008 (Gradio's progress)
        pairs, results, message = colorize(files, progress, saturation)
        if not pairs:
            gr.Warning("No photo could be colorized; see the messages.")
        first = pairs[0] if pairs else None
        return first, [p[1] for p in pairs], results, message, pairs

    def pick(pairs, event: gr.SelectData):
        return pairs[event.index] if pairs and event.index < len(pairs) else None

    with gr.Blocks(title="Colorize photos") as page:
        gr.Markdown(f"# Colorize photos\nModel: {model_line}. Drop one or many photos "
                    "(colour or gray); each is shown gray and colorized, and the "
                    "results download at full resolution.")
        with gr.Row():
            uploads = gr.File(file_count="multiple", file_types=["image"],
                              label="Photos", elem_id="uploads")
            with gr.Column():
                saturation = gr.Slider(0.0, 2.0, value=colorize.colorizer.saturation, step=0.05,
                                       elem_id="saturation",
                                       label="saturation (0 gray, 1 the network's own colours; "
                                             "starts at the model's choice)")
                button = gr.Button("Colorize", variant="primary", elem_id="colorize")
                message = gr.Markdown(elem_id="messages")
        slider = gr.ImageSlider(label="gray | colorized (drag the handle)",
                                elem_id="slider", type="numpy")
        gallery = gr.Gallery(label="colorized (pick one to compare)", columns=6, height="auto",
                             object_fit="contain", preview=False, elem_id="gallery",
                             type="numpy")
        downloads = gr.File(file_count="multiple", label="Full-resolution results",
                            elem_id="downloads")
        pairs = gr.State([])
        button.click(run, [uploads, saturation], [slider, gallery, downloads, message, pairs])
        gallery.select(pick, pairs, slider)
    return page


def parse_args(argv):
    defaults = InferenceConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    quiet.add_verbose_flag(p)
    p.add_argument("--model", help="a .keras model (default: as model_transform.py: the "
                   "newest runs/*/model.keras, else the shipped real-photo model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-side", type=int, default=defaults.max_side)
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS)
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB)
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error("--port must be 1-65535")
    if args.max_side < 0 or args.max_pixels < 1 or args.max_upload_mb <= 0:
        p.error("--max-side must be >= 0, --max-pixels >= 1 and --max-upload-mb > 0")
    return args


def start(args, folder, block=True):
    """Loads the model, builds the page and serves it; returns the Gradio app."""
    import model_transform

    if args.model:
        model_path, why = args.model, "given"
    else:
        model_path, why = model_transform.default_model()
    colorize = Colorize(model_path, os.path.join(folder, "results"), args.max_side,
                        args.max_pixels)
    os.makedirs(colorize.folder, exist_ok=True)
    page = build_page(colorize, f"`{os.path.relpath(model_path)}` ({why})")
    page.queue(default_concurrency_limit=1)  # one colorization at a time: 2 cores
    print(f"serving on http://{args.host}:{args.port} (model {model_path}); Ctrl-C stops",
          flush=True)
    # max_file_size in bytes: Gradio parses "1.0mb", which the float flag gave, as the
    # unit ".0MB" and raised.
    with quiet.stderr_silenced():
        page.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True,
                    max_file_size=int(args.max_upload_mb * 2**20), show_error=True, quiet=True,
                    allowed_paths=[folder], inbrowser=False)
    if block:
        page.block_thread()
    return page


def main(argv=None):
    args = parse_args(argv)
    folder = tempfile.mkdtemp(prefix="colorize-serve-")
    # Gradio keeps uploads under GRADIO_TEMP_DIR; no usage statistics are sent.
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(folder, "uploads")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("serve.py: error: the web page needs Gradio: pip install -r "
              "requirements-extra.txt", file=sys.stderr)
        return 2
    import model_transform
    from colorization.inference import ModelError

    try:
        start(args, folder)
    except (ModelError, model_transform.UsageError) as e:
        print(f"serve.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the port is taken
        print(f"serve.py: error: cannot serve on {args.host}:{args.port} ({e})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through interrupts.run: a normal stop
        interrupts.handled()
    finally:
        interrupts.handled()  # Gradio's block_thread may swallow the first one: a stop
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "serve.py"))
