"""Exports a trained model for other runtimes: uint8 photo in, colorized uint8 photo out.

    python export_model.py MODEL.keras --format savedmodel --out colorize_savedmodel
    python export_model.py MODEL.keras --format tflite --out colorize.tflite
    python export_model.py MODEL.keras --format tflite --quantize int8 \\
        --calibration data/real --out colorize_int8.tflite
    python export_model.py MODEL.keras --format onnx --out colorize.onnx

Every network of the registry exports: the graph (colorization/serving.py) takes
the photo's L, runs the network with the long side capped at --max-side, decodes
the output space, upsamples ab to the photo and joins it with the photo's own L,
as model_transform.py does. Inputs: uint8 (n, H, W, C), C = 1 (gray), 3 (RGB)
or 4 (RGBA); outputs "rgb" (uint8, n x H x W x 3) and "ab" (float32, ab units).

* savedmodel: any size; signature "serving_default" (also "serve").
* tflite: a fixed size, 3 channels (--size, default 224 x 224: TFLite's converter needs the
  channel counts static, and a fixed size keeps the interpreter's plan fixed);
  float32, float16 weights, or int8 by post-training quantization calibrated on
  --calibration's examples (the network in int8; the colour conversion, the
  decoding and the resizes stay float, where 8 bits would not hold them).
* onnx: any size, through tf2onnx (requirements-extra.txt); checked with onnxruntime;
  float32, or int8 by onnxruntime's static quantization of the network's
  convolutions and matrix products, calibrated on --calibration's examples.

Before reporting success the command runs the export on real photos (--check,
default resources/photos: each photo, a crop of odd size and its gray copy)
and compares with model_transform.py's own output; a failed check, like any
error, leaves nothing at --out.
"""

import argparse
import os
import sys
import tempfile
import time

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np

from colorization import atomic_io
from colorization.inference import ModelError

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZE = ("float16", "int8")
DEFAULT_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "photos")
ONNX_OPSET = 17
# What an export must hold to, against model_transform.py on the check photos:
# (mean |RGB difference| in levels, its 99.9th percentile, RMSE of ab in ab units).
# Measured on the shipped model and the astronaut: float32 exports differ by at
# most one rounding step (mean 0.002, ab 4e-5), float16 weights by ab 0.02; int8
# by ab 1.2 RMSE, mean 0.8 levels, 16 at the 99.9th percentile calibrated on real
# photos (1.4, 1.1 and 29 on the synthetic scenes). The bounds leave room for
# other models and photos.
TOLERANCE = {"float32": (0.25, 2.0, 0.25), "float16": (0.5, 3.0, 1.0),
             "int8": (3.0, 48.0, 4.0)}


class ExportError(Exception):
    """The export cannot be made or failed its check; str(error) is the one-line reason."""


# ---------------------------------------------------------------- the graph


def serving_function(serving, shape):
    """A tf.function over the serving model for uint8 inputs of `shape`."""
    import tensorflow as tf

    spec = tf.TensorSpec(shape, tf.uint8, name="image")

    @tf.function(input_signature=[spec])
    def serve(image):
        out = serving(image, training=False)
        return {"rgb": out["rgb"], "ab": out["ab"]}

    return serve, spec


def write_saved_model(serving, path, shape=(None, None, None, None)):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(serving)
    serve, spec = serving_function(serving, shape)
    archive.add_endpoint("serve", serve, input_signature=[spec])
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    with quiet.stderr_silenced():
        archive.write_out(path, verbose=False)


def calibration_images(data_dir, size, count):
    """Up to `count` uint8 RGB examples (size x size) of a built dataset's training split."""
    import read_input
    from colorization.colorspace import lab8_to_rgb, to_uint8

    images = []
    try:
        for lab8, _, _ in read_input.eval_crops(data_dir, "train", crop_size=min(size),
                                                batch_size=16, limit=count):
            images.extend(to_uint8(lab8_to_rgb(x)) for x in lab8)
    except Exception as e:  # noqa: BLE001 (tf.data raises many types for a bad folder)
        raise ExportError(f"--calibration {data_dir}: cannot read its examples "
                          f"({read_input.record_error_text(e)})") from None
    if not images:
        raise ExportError(f"--calibration {data_dir}: no training examples")
    import cv2

    return [cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            if x.shape[:2] != tuple(size) else x for x in images]


def _network_node(name):
    """Whether a TFLite tensor belongs to the network (model.name + '_any_size'),
    the part int8 quantization may take: the rest is colour arithmetic."""
    return "_any_size" in name


def write_tflite(serving, path, size, quantize=None, calibration=None):
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        saved = os.path.join(tmp, "saved")
        write_saved_model(serving, saved, (1, size[0], size[1], 3))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serve"])
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        import warnings

        with quiet.stderr_silenced(), warnings.catch_warnings():
            # tf.lite.Interpreter's deprecation notice (the calibration runs it)
            warnings.simplefilter("ignore", UserWarning)
            if quantize != "int8":
                flat = converter.convert()
            else:
                flat = _int8(tf, converter, calibration)
    with open(path, "wb") as f:
        f.write(flat)


def _int8(tf, converter, images):
    """Post-training int8 of the network's layers, calibrated on `images`; the
    colour conversion and decoding are kept float (denylisted by tensor name)."""
    def representative():
        for x in images:
            yield {"image": x[None]}

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    # A calibrated but not yet quantized model names every tensor; the debugger's
    # denylist takes those names (the documented way to keep some ops float).
    converter._experimental_calibrate_only = True
    names = [d["name"] for d in tf.lite.Interpreter(model_content=converter.convert())
             .get_tensor_details()]
    converter._experimental_calibrate_only = False
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=[n for n in names if not _network_node(n)])
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def write_onnx(serving, path, quantize=None, calibration=None):
    serve, spec = serving_function(serving, (None, None, None, None))
    _convert_onnx(serve, spec, path, quantize, calibration)


def lightness_inputs(images):
    """The network's inputs for uint8 RGB photos: L / 100 (H, W, 1), float32."""
    from colorization.colorspace import rgb_to_lab

    return [(rgb_to_lab(x / 255.0)[..., :1] / 100.0).astype(np.float32) for x in images]


def write_network_onnx(net, path, quantize=None, calibration=None):
    """The network alone (float32 L / 100, (n, H, W, 1), any size -> its colour output,
    no colour conversion or decoding around it) as ONNX, float32 or int8 calibrated
    on `calibration` (uint8 RGB photos): what bench.py --export times to tell the
    network's int8 speed from the float arithmetic that a whole export keeps."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, None, 1), tf.float32, name="lightness")

    @tf.function(input_signature=[spec])
    def run(lightness):
        out = net(lightness, training=False)  # {output name: tensor}, named so in ONNX
        return dict(out) if isinstance(out, dict) else {"colour": out}

    feeds = None if quantize != "int8" else lightness_inputs(calibration)
    _convert_onnx(run, spec, path, quantize, feeds)


def _convert_onnx(function, spec, path, quantize, feeds):
    """tf2onnx's conversion of a tf.function over one input `spec`, then, for int8,
    _onnx_int8 calibrated on `feeds` (arrays for that input, without the batch axis)."""
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx and onnxruntime: pip install -r "
                          "requirements-extra.txt") from None
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with quiet.stderr_silenced(), tempfile.TemporaryDirectory(prefix="export-") as tmp:
        float_path = path if quantize != "int8" else os.path.join(tmp, "float.onnx")
        tf2onnx.convert.from_function(function, input_signature=[spec], opset=ONNX_OPSET,
                                      output_path=float_path)
        if quantize == "int8":
            _onnx_int8(float_path, path, feeds, tmp, input_name=spec.name)


def _onnx_int8(float_path, path, images, tmp, input_name):
    """onnxruntime's static int8 quantization of the network's convolutions and matrix
    products (per channel, u8 activations, s8 weights: the operand types of the u8s8
    VNNI/AMX kernels), calibrated on `images`; every other op (the colour conversion,
    the decoding, the resizes) stays float."""
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.images = iter(images)

        def get_next(self):
            x = next(self.images, None)
            return None if x is None else {input_name: x[None]}

    prepared = os.path.join(tmp, "prepared.onnx")
    q.quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
    q.quantize_static(prepared, path, Reader(), quant_format=q.QuantFormat.QOperator,
                      per_channel=True, activation_type=q.QuantType.QUInt8,
                      weight_type=q.QuantType.QInt8,
                      op_types_to_quantize=["Conv", "MatMul", "Gemm"])


# ---------------------------------------------------------------- running an export


def runner(fmt, path):
    """A function uint8 (1, H, W, C) -> {"rgb", "ab"} NumPy, running the written export
    in its own runtime (TensorFlow's SavedModel loader, the TFLite interpreter,
    onnxruntime)."""
    if fmt == "savedmodel":
        import tensorflow as tf

        fn = tf.saved_model.load(path).signatures["serving_default"]
        return lambda x: {k: v.numpy() for k, v in fn(image=x).items()}
    if fmt == "tflite":
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            run = tf.lite.Interpreter(path, num_threads=os.cpu_count()).get_signature_runner()

        def tflite(x):
            with quiet.stderr_silenced():  # the XNNPACK delegate's INFO line, on fd 2
                return run(image=x)
        return tflite
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name  # "image"; "lightness" for write_network_onnx's
    return lambda x: dict(zip(names, session.run(names, {feed: x}), strict=True))


def check_photos(paths, max_side, size=None):
    """(name, uint8 image) pairs to check an export on: each photo (its long side
    brought to max_side when over it, where model_transform.py and the graph
    shrink differently; to `size` for a fixed-size export), a crop of odd size
    and a gray copy (one channel)."""
    import cv2

    from colorization.image_io import ImageError, is_image_name, load_pixels
    from colorization.inference import network_size

    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_name(n))
        else:
            files.append(path)
    photos = []
    for path in files:
        try:
            rgb, _ = load_pixels(path)
        except ImageError as e:
            raise ExportError(f"--check {path}: {e}") from None
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)
        name = os.path.basename(path)
        if size is not None:
            photos.append((name, cv2.resize(rgb, (size[1], size[0]),
                                            interpolation=cv2.INTER_AREA)))
            continue
        h, w = network_size(*rgb.shape[:2], max_side)
        if (h, w) != rgb.shape[:2]:
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        photos.append((name, rgb))
        crop_h, crop_w = (h * 3) // 5 | 1, w // 2 | 1  # odd: not a multiple of 8
        photos.append((f"{name} crop", rgb[h // 7: h // 7 + crop_h, w // 5: w // 5 + crop_w]))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
        photos.append((f"{name} gray", gray))
    if not photos:
        raise ExportError("no photos to check the export on (--check)")
    return photos


def reference(colorizer, image, max_side):
    """model_transform.py's colorization of a uint8 image by an inference.Colorizer:
    (RGB uint8, ab at full size)."""
    import cv2

    from colorization.colorspace import model_to_ab
    from colorization.inference import colorize_pixels, network_input

    rgb = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image
    ab01, _ = colorizer.predict(network_input(rgb, max_side)[None])
    ab = cv2.resize(model_to_ab(ab01[0]), (rgb.shape[1], rgb.shape[0]),
                    interpolation=cv2.INTER_LINEAR)
    return colorize_pixels(rgb, ab01[0]), ab


def verify(model, run, photos, max_side, temperature, precision, log=print, saturation=None):
    """Runs the export on each photo and compares with model_transform.py's output;
    ExportError naming the photo where a difference exceeds TOLERANCE[precision]."""
    from colorization.inference import Colorizer

    mean_bound, tail_bound, ab_bound = TOLERANCE[precision]
    # one any-size wiring for all photos
    colorizer = Colorizer(model, temperature=temperature, saturation=saturation)
    worst = (0.0, 0.0, 0.0)
    for name, image in photos:
        want_rgb, want_ab = reference(colorizer, image, max_side)
        got = run(image[None])
        rgb, ab = np.asarray(got["rgb"])[0], np.asarray(got["ab"])[0]
        if rgb.shape != want_rgb.shape or rgb.dtype != np.uint8:
            raise ExportError(f"check failed on {name}: the export returned {rgb.dtype} "
                              f"{rgb.shape}, model_transform.py {want_rgb.shape}")
        diff = np.abs(rgb.astype(np.int16) - want_rgb.astype(np.int16))
        figures = (float(diff.mean()), float(np.percentile(diff, 99.9)),
                   float(np.sqrt(np.mean((ab - want_ab) ** 2))))
        worst = tuple(max(a, b) for a, b in zip(worst, figures, strict=True))
        if not np.isfinite(figures[2]) or any(
                f > b for f, b in zip(figures, (mean_bound, tail_bound, ab_bound), strict=True)):
            raise ExportError(
                f"check failed on {name}: RGB differs from model_transform.py by "
                f"{figures[0]:.2f} levels on average ({figures[1]:.0f} at the 99.9th "
                f"percentile), ab by {figures[2]:.2f} RMSE; the bounds for {precision} are "
                f"{mean_bound}, {tail_bound:.0f} and {ab_bound}")
    log(f"checked on {len(photos)} image(s) against model_transform.py: RGB within "
        f"{worst[0]:.3f} levels on average, {worst[1]:.0f} at the 99.9th percentile; "
        f"ab RMSE {worst[2]:.3f} (bounds for {precision}: {mean_bound}, {tail_bound:.0f}, "
        f"{ab_bound})")
    return worst


# ---------------------------------------------------------------- the command


def converter_failure(fmt, error):
    """A converter's exception as one line: the format and the first line of its
    cause (a TFLite conversion error is hundreds of lines of MLIR; --verbose prints
    it whole)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    return (f"the {fmt} converter failed: {type(error).__name__}: {cause[:300]} "
            "(--verbose shows its whole output)")


def export(args, log=print):
    """Writes and checks the export args asks for; returns the line to print."""
    from colorization.inference import float32_model, load_model
    from colorization.serving import serving_model

    started = time.perf_counter()
    # A model trained in mixed bfloat16 or float16 exports as its float32 twin, and is
    # checked against that twin: the same weights, whatever the training's precision.
    model = float32_model(load_model(args.model))
    serving = serving_model(model, args.max_side, args.temperature, saturation=args.saturation)
    size = tuple(args.size) if args.format == "tflite" else None
    photos = check_photos(args.check, args.max_side, size)
    precision = args.quantize or "float32"
    # (ONNX runs at any size; it is calibrated at the size TFLite's default is.)
    calibration = (calibration_images(args.calibration, size or (224, 224),
                                      args.calibration_count)
                   if args.quantize == "int8" else None)
    with atomic_io.replacing(args.out, os.path.splitext(args.out)[1]) as tmp:
        try:
            if args.format == "savedmodel":
                write_saved_model(serving, tmp)
            elif args.format == "tflite":
                write_tflite(serving, tmp, size, args.quantize, calibration)
            else:
                write_onnx(serving, tmp, args.quantize, calibration)
        except (ExportError, OSError):
            raise
        except Exception as e:  # each converter raises its own types
            interrupts.raise_if_pending()  # Ctrl-C or SIGTERM inside the converter's C code
            raise ExportError(converter_failure(args.format, e)) from e
        verify(model, runner(args.format, tmp), photos, args.max_side, args.temperature,
               precision, log, saturation=args.saturation)
    what = f"{args.format}" + (f" ({args.quantize})" if args.quantize else "")
    shape = f"1x{size[0]}x{size[1]}x3" if size else "any size"
    return (f"wrote {args.out}: {what}, uint8 {shape} in, 'rgb' uint8 and 'ab' out, "
            f"in {time.perf_counter() - started:.0f}s")


def _size(text):
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 224 or 240x320 "
                                         "(at least 16)")
    return parts * 2 if len(parts) == 1 else parts


def main(argv=None):
    from config import InferenceConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    quiet.add_verbose_flag(p)
    p.add_argument("model", metavar="MODEL.keras")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--quantize", choices=QUANTIZE, help="tflite: float16 weights, or int8 "
                   "calibrated on --calibration; onnx: int8 (onnxruntime's quantization)")
    p.add_argument("--calibration", metavar="DATA", help="a dataset input_create.py built: "
                   "int8's calibration examples (its training split)")
    p.add_argument("--calibration-count", type=int, default=64, metavar="N")
    p.add_argument("--size", type=_size, default=[224, 224], metavar="HxW",
                   help="tflite only: the fixed input size (default 224)")
    p.add_argument("--max-side", type=int, default=InferenceConfig().max_side,
                   help="the network sees the long side capped to this (0: full size)")
    p.add_argument("--temperature", type=float, help="annealed mean's T of a "
                   "classification output (default: the model's own)")
    p.add_argument("--saturation", type=float, metavar="S",
                   help="the colours' chroma, baked into the graph: 0 gray, 1 the network's "
                        "own, up to 2 (default: the model's own, as model_transform.py)")
    p.add_argument("--check", nargs="+", default=[DEFAULT_CHECK], metavar="PHOTO",
                   help="photos or folders the export is checked on (default: "
                   "resources/photos)")
    p.add_argument("--out", required=True, metavar="PATH")
    args = p.parse_args(argv)
    if args.quantize and not (args.format == "tflite"
                              or (args.format == "onnx" and args.quantize == "int8")):
        p.error("--quantize applies to --format tflite (float16, int8) and onnx (int8)")
    if args.quantize == "int8" and not args.calibration:
        p.error("--quantize int8 needs --calibration DATA (a dataset input_create.py built)")
    if args.calibration and not os.path.isdir(args.calibration):
        p.error(f"--calibration {args.calibration}: no such folder")
    if args.calibration_count < 1 or args.max_side < 0:
        p.error("--calibration-count must be >= 1 and --max-side >= 0")
    if args.temperature is not None and not args.temperature > 0:
        p.error("--temperature must be > 0")
    if args.saturation is not None and not 0.0 <= args.saturation <= 2.0:
        p.error("--saturation must be between 0 and 2")
    if os.path.exists(args.out):
        p.error(f"--out {args.out} exists; remove it or choose another")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        p.error(f"--out {args.out}: its folder does not exist")
    try:
        print(export(args))
    except ModelError as e:
        print(f"export_model.py: error: {args.model}: {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        if quiet.verbose_requested(argv) and e.__cause__ is not None:
            import traceback

            traceback.print_exception(e.__cause__, file=sys.stderr)
        print(f"export_model.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder without write permission
        print(f"export_model.py: error: cannot write {args.out} ({e.strerror or e}); nothing "
              "was written", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "export_model.py",
                            "nothing was written at --out"))
