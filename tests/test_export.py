"""export_model.py and the graph it exports (colorization/serving.py): the in-graph
colour conversions against scikit-image and colorspace, each output space's graph
decoding against its NumPy one, the serving graph of every registered system
against model_transform.py's path, and the shipped model exported to each format
and run by that format's own runtime in a process that imports none of this
project's code."""

import json
import os
import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest
from conftest import ROOT, assert_refused, run_main
from test_systems import SYSTEMS, tiny_cfg

import build_model
import export_model
from colorization import colorspace, graph_colour, systems
from colorization.inference import Colorizer, colorize_pixels, load_model, network_input
from colorization.layers import AntialiasedResize
from colorization.serving import serving_model

SHIPPED = os.path.join(ROOT, "resources", "models", "real-photos.keras")
ASTRONAUT = os.path.join(ROOT, "resources", "photos", "astronaut.jpg")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def every_rgb(step=5):
    v = np.arange(0, 256, step, dtype=np.float32) / 255.0
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)


def test_graph_colour_conversions_equal_scikit_image():
    from skimage import color

    rgb = every_rgb()
    lab = numpy(graph_colour.rgb_to_lab(rgb))
    # The tolerance of colorspace's own test: the white point's digits differ.
    assert np.abs(lab - color.rgb2lab(rgb)).max() < 0.01
    assert np.abs(lab - colorspace.rgb_to_lab(rgb)).max() < 2e-3
    # the serving graph's L alone (ImageToLightness), the same values
    assert np.abs(numpy(graph_colour.lightness(rgb)) - lab[:, 0]).max() < 1e-4
    back = numpy(graph_colour.lab_to_rgb(lab))
    assert np.abs(back - rgb).max() < 1e-4  # in gamut: the round trip is exact
    # Out of gamut the project clips linear RGB (scikit-image clips XYZ first).
    wild = np.random.default_rng(0).uniform([0, -120, -120], [100, 120, 120], (5000, 3))
    wild = wild.astype(np.float32)
    assert np.abs(numpy(graph_colour.lab_to_rgb(wild)) - colorspace.lab_to_rgb(wild)).max() < 1e-4
    gray = np.repeat(rgb[:, :1], 3, -1)
    image = (gray * 255).round().astype(np.uint8).reshape(1, -1, 1, 3)
    one_channel = image[..., :1]
    assert np.array_equal(numpy(graph_colour.image_to_rgb01(one_channel)),
                          numpy(graph_colour.image_to_rgb01(image)))


def test_graph_output_path_equals_colorspace_within_one_level():
    rng = np.random.default_rng(1)
    lab = rng.uniform([0, -110, -110], [100, 110, 110], (20000, 3)).astype(np.float32)
    want = colorspace.lab_to_rgb8(lab.copy())  # chroma fitted at fixed L, NumPy
    got = numpy(graph_colour.lab_to_rgb8(lab))
    assert got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05
    # Only the colours out of gamut are bisected (gathered, then scattered back): with
    # none out of gamut, and with one in gamut before the rest, as colorspace too.
    inside = colorspace.rgb_to_lab(rng.uniform(0, 1, (500, 3))).astype(np.float32)
    for part in (inside, np.concatenate([inside[:1], lab[:500]])):
        got = numpy(graph_colour.lab_to_rgb8(part)).astype(int)
        assert np.abs(got - colorspace.lab_to_rgb8(part.copy())).max() <= 1
    light, uv = lab[:, 0], rng.uniform(0, 255, (20000, 2)).astype(np.float32)
    assert np.abs(numpy(graph_colour.ab_from_uv(light, uv))
                  - colorspace.ab_from_uv(light, uv)).max() < 0.05


@pytest.mark.parametrize("name", sorted(systems.OUTPUTS))
def test_every_output_spaces_graph_decoding_equals_its_numpy_decoding(name):
    space = systems.OUTPUTS[name]
    rng = np.random.default_rng(2)
    value = rng.normal(0, 3, (2, 6, 7, space.channels())).astype(np.float32)
    if space.activation == "sigmoid":
        value = 1 / (1 + np.exp(-value))
    gray = rng.random((2, 6, 7, 1)).astype(np.float32)
    want = space.decode(value, None, gray)
    got = numpy(space.decode_graph(value, None, gray))
    assert got.shape == want.shape == (2, 6, 7, 2)
    assert np.abs(got - want).max() < 2e-4, np.abs(got - want).max()


def test_antialiased_resize_equals_keras_resizing():
    rng = np.random.default_rng(3)
    for h, w in [(512, 512), (301, 173), (90, 700), (50, 60)]:
        x = rng.random((1, h, w, 1)).astype(np.float32)
        want = keras.layers.Resizing(224, 224, antialias=True)(x)
        assert np.abs(numpy(AntialiasedResize(224, 224)(x)) - numpy(want)).max() < 5e-5


def photos():
    """Real photos the model was not trained on: the project's held-out astronaut and
    scikit-image's coffee, as uint8 RGB of sizes that are not multiples of 8."""
    from skimage import data

    astronaut = cv2.cvtColor(cv2.imread(ASTRONAUT), cv2.COLOR_BGR2RGB)
    return [astronaut[:301, 40:213], data.coffee()[::2, ::2][:197]]


def model_transform_rgb(model, image, max_side=512):
    ab01, _ = Colorizer(model).predict(network_input(image, max_side)[None])
    return colorize_pixels(image, ab01[0])


@pytest.mark.parametrize("network, output", SYSTEMS)
def test_serving_graph_of_every_system_equals_model_transform(network, output):
    model = build_model.build_model(tiny_cfg(network, output, 3))
    serving = serving_model(model)
    for image in photos()[1:]:  # one photo: each new size costs a trace of both paths
        got = serving.predict_on_batch(image[None])
        want = model_transform_rgb(model, image)
        assert got["rgb"].dtype == np.uint8 and got["rgb"].shape[1:] == image.shape
        diff = np.abs(got["rgb"][0].astype(int) - want.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (network, output, diff.max())


def test_serving_graph_caps_the_long_side_as_model_transform_does():
    model = load_model(SHIPPED)
    image = cv2.resize(photos()[1], (700, 410), interpolation=cv2.INTER_AREA)
    got = serving_model(model, max_side=256).predict_on_batch(image[None])["rgb"][0]
    want = model_transform_rgb(model, image, max_side=256)
    uncapped = model_transform_rgb(model, image, max_side=0)
    near = np.abs(got.astype(int) - want.astype(int)).mean()
    # A triangle filter against area averaging: close to model_transform's capped
    # output, and much closer to it than to the uncapped one.
    far = np.abs(got.astype(int) - uncapped.astype(int)).mean()
    assert near < 1.5 and near < far / 3  # measured: 1.07 and 6.92 levels


# Each export run in a process that imports only its runtime (and NumPy, OpenCV to
# read the photo), from a folder outside the repository: no project code.
RUN_EXPORT = textwrap.dedent("""
    import json, sys
    import cv2, numpy as np
    fmt, path, photo, out = sys.argv[1:5]
    image = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
    if fmt == "savedmodel":
        import tensorflow as tf
        serve = tf.saved_model.load(path).signatures["serving_default"]
        result = {k: v.numpy() for k, v in serve(image=tf.constant(image[None])).items()}
    elif fmt == "tflite":
        import tensorflow as tf
        runner = tf.lite.Interpreter(path).get_signature_runner()
        image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
        result = runner(image=image[None])
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        result = dict(zip(names, session.run(names, {"image": image[None]})))
    np.save(out + ".rgb.npy", result["rgb"]); np.save(out + ".ab.npy", result["ab"])
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                            ("colorization", "config", "build_model", "model_transform"))))
""")


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("photo") / "coffee_crop.png")
    cv2.imwrite(path, cv2.cvtColor(photos()[1], cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("fmt, quantize", [("savedmodel", None), ("tflite", None),
                                           ("tflite", "float16"), ("onnx", None)])
def test_exports_run_without_the_projects_code_and_equal_keras(fmt, quantize, photo_file,
                                                               tmp_path):
    out = str(tmp_path / {"savedmodel": "sm", "tflite": "m.tflite", "onnx": "m.onnx"}[fmt])
    args = [SHIPPED, "--format", fmt, "--out", out] + (["--quantize", quantize] if quantize
                                                       else [])
    proc = run_main(export_model.main, args)
    assert proc.returncode == 0, proc.stderr
    assert "checked on" in proc.stdout and f"wrote {out}" in proc.stdout
    assert not proc.stderr.strip(), proc.stderr  # no TensorFlow or converter noise
    script = tmp_path / "run_export.py"
    script.write_text(RUN_EXPORT)
    run = subprocess.run([sys.executable, str(script), fmt, out, photo_file, str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONPATH": ""}, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    # None of ours (TensorFlow itself may load Keras).
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
    rgb = np.load(str(tmp_path / "r.rgb.npy"))[0]
    image = cv2.cvtColor(cv2.imread(photo_file), cv2.COLOR_BGR2RGB)
    if fmt == "tflite":
        image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    want = model_transform_rgb(load_model(SHIPPED), image)
    assert rgb.shape == image.shape and rgb.dtype == np.uint8
    mean_bound, tail_bound, _ = export_model.TOLERANCE[quantize or "float32"]
    diff = np.abs(rgb.astype(int) - want.astype(int))
    assert diff.mean() <= mean_bound and np.percentile(diff, 99.9) <= tail_bound
    chroma = np.hypot(*np.moveaxis(colorspace.rgb_to_lab(rgb / 255.0)[..., 1:], -1, 0))
    assert chroma.mean() > 3.0  # colour, not a gray copy


def test_a_failed_check_or_a_bad_argument_leaves_nothing(tmp_path, monkeypatch):
    out = str(tmp_path / "m.tflite")
    monkeypatch.setitem(export_model.TOLERANCE, "float32", (-1.0, -1.0, -1.0))
    proc = run_main(export_model.main, [SHIPPED, "--format", "tflite", "--size", "32",
                                        "--out", out])
    assert_refused(proc, "export_model.py", "check failed on", out, str(tmp_path))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    proc = run_main(export_model.main, [str(bad), "--format", "savedmodel", "--out", out])
    assert_refused(proc, "export_model.py", "not a Keras model file", out, str(tmp_path))
    for args, words in [(["--format", "onnx", "--quantize", "float16"], "applies to"),
                        (["--format", "onnx", "--quantize", "int8"], "needs --calibration"),
                        (["--format", "tflite", "--quantize", "int8"], "needs --calibration"),
                        (["--format", "tflite", "--size", "7"], "not a size")]:
        proc = run_main(export_model.main, [SHIPPED, *args, "--out", out])
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert not os.path.exists(out)


def test_bench_export_reports_int8_against_float_keras(scenes_dataset):
    """Also the int8 export itself (calibration_images, write_tflite), as the command
    runs it; one int8 conversion costs about 30 s here, so it is made once."""
    import bench

    result = bench.bench_export(SHIPPED, scenes_dataset, [ASTRONAUT], repeats=2,
                                calibration_count=4)
    for name in ("keras_float32", "tflite_float32", "tflite_int8", "onnx_float32", "onnx_int8"):
        assert result[name]["images_per_s"] > 0 and result[name]["repeats"] == 2
    assert result["keras_float32"]["ab_rmse_vs_keras_float"] == 0.0
    assert result["tflite_float32"]["ab_rmse_vs_keras_float"] < 0.01
    assert result["onnx_float32"]["ab_rmse_vs_keras_float"] < 0.01
    # onnxruntime's int8 of the same network, on the same calibration.
    assert 0.0 < result["onnx_int8"]["ab_rmse_vs_keras_float"] < 15.0
    assert result["onnx_int8_size_mb"] < 0.5 * result["keras_file_mb"]
    assert result["onnx_int8_speedup_vs_keras_float"] > 0
    # Measured: 10.1 ab RMSE against the float model with these 4 synthetic crops, 9.8
    # with 64 real ones (the first shipped model, the paper's network: 1.2). The
    # shipped EfficientNet-Lite0 hypercolumn does not hold up in int8, and
    # export_model.py's int8 check (bound 4) refuses it; here the int8 path itself is
    # held to run and to stay within a loose bound.
    assert 0.0 < result["tflite_int8"]["ab_rmse_vs_keras_float"] < 15.0
    assert result["tflite_int8_size_mb"] < 0.5 * result["keras_file_mb"]
    # The network alone (write_network_onnx): float32 ONNX equals Keras, int8 runs.
    network = result["network"]
    assert network["keras_float32"]["ab_rmse_vs_keras_float"] == 0.0
    assert network["onnx_float32"]["ab_rmse_vs_keras_float"] < 0.01
    assert 0.0 < network["onnx_int8"]["ab_rmse_vs_keras_float"] < 15.0
    assert network["onnx_int8_speedup_vs_keras_float"] > 0


# ---------------------------------------------------------------- any training precision


def _saved_under(policy, folder, network="iizuka", output="ab_bins"):
    """A tiny model built and saved under `policy` (its layers keep the policy)."""
    build_model.set_precision(policy)
    try:
        model = build_model.build_model(tiny_cfg(network, output))
        path = str(folder / f"{policy}.keras")
        model.save(path)
    finally:
        build_model.set_precision("float32")
    return path


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_the_float32_twin_of_a_mixed_model_computes_in_float32(policy, tmp_path):
    from colorization.inference import float32_model

    mixed = load_model(_saved_under(policy, tmp_path))
    assert {layer.dtype_policy.name for layer in mixed.layers} >= {policy}
    twin = float32_model(mixed)
    assert {layer.dtype_policy.name for layer in twin.layers} == {"float32"}
    assert [layer.name for layer in twin.layers] == [layer.name for layer in mixed.layers]
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), mixed.get_weights(),
                                                   strict=True))
    assert systems.of_model(twin) == systems.of_model(mixed)
    x = np.random.default_rng(0).random((1, 224, 224, 1)).astype(np.float32)
    a, b = twin.predict(x, verbose=0)["ab_bins"], mixed.predict(x, verbose=0)["ab_bins"]
    assert np.abs(a - b).max() < 0.2 and not np.array_equal(a, b)  # the same net, more bits
    assert float32_model(twin) is twin  # nothing to do for a float32 model


# Before the twin, a bf16 model's TFLite export failed (ERROR_NEEDS_FLEX_OPS: TFLite
# has no bfloat16 convolution) with a traceback of about 1,700 lines.
@pytest.mark.parametrize("policy, fmt, quantize", [
    ("mixed_bfloat16", "tflite", None), ("mixed_bfloat16", "tflite", "float16"),
    ("mixed_bfloat16", "savedmodel", None), ("mixed_bfloat16", "onnx", None),
    ("mixed_float16", "tflite", None), ("mixed_float16", "savedmodel", None),
    ("mixed_float16", "onnx", None)])
def test_a_model_saved_under_a_mixed_policy_exports_and_passes_its_check(policy, fmt, quantize,
                                                                         tmp_path):
    path = _saved_under(policy, tmp_path)
    out = str(tmp_path / {"savedmodel": "sm", "tflite": "m.tflite", "onnx": "m.onnx"}[fmt])
    args = [path, "--format", fmt, "--out", out, "--check", ASTRONAUT]
    proc = run_main(export_model.main, args + (["--quantize", quantize] if quantize else []))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checked on" in proc.stdout and os.path.exists(out)


def test_a_converter_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def failing(*_args, **_kwargs):
        raise RuntimeError("loc(fused[...]): 'tf.Conv2D' op is neither a custom op nor a flex op\n"
                           + "  %1 = mlir\n" * 500 + "error: ERROR_NEEDS_FLEX_OPS")

    monkeypatch.setattr(export_model, "write_tflite", failing)
    out = str(tmp_path / "m.tflite")
    proc = run_main(export_model.main, [SHIPPED, "--format", "tflite", "--out", out])
    assert_refused(proc, "export_model.py", "the tflite converter failed: RuntimeError", out,
                   str(tmp_path))
    proc = run_main(export_model.main, [SHIPPED, "--format", "tflite", "--out", out,
                                        "--verbose"])
    assert proc.returncode == 2 and proc.stderr.count("%1 = mlir") == 500
    assert not os.path.exists(out)


def test_a_baked_saturation_matches_model_transforms(tmp_path):
    """--saturation 0.5 in the graph equals the Colorizer's (and 0 gives gray)."""
    model = load_model(SHIPPED)
    image = photos()[1]
    for s in (0.0, 0.5, 1.7):
        got = serving_model(model, saturation=s).predict_on_batch(image[None])
        ab01, _ = Colorizer(model, saturation=s).predict(network_input(image, 512)[None])
        want = colorize_pixels(image, ab01[0])
        diff = np.abs(got["rgb"][0].astype(int) - want.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (s, diff.max())
        if s == 0.0:
            assert np.abs(got["ab"]).max() < 1e-3
    out = str(tmp_path / "sm")
    proc = run_main(export_model.main, [SHIPPED, "--format", "savedmodel", "--saturation",
                                        "0.5", "--out", out, "--check", ASTRONAUT])
    assert proc.returncode == 0 and "checked on" in proc.stdout, proc.stderr
