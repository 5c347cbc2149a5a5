"""model_transform.py: any size, alpha, L preserved, reference, batch mode, bad input."""

import io
import json
import os

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from conftest import ROOT, colourful_image, run_script, run_transform

import model_transform
from colorization import colorspace, inference

PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A demo-width model whose output layer is scaled up, so that its untrained
    colours are far from gray and depend visibly on the global features."""
    import keras

    import build_model
    from config import get_config

    cfg = get_config("demo")
    build_model.set_precision("float32")
    keras.utils.set_random_seed(123)  # the same weights whatever ran before
    model = build_model.build_model(cfg)
    rng = np.random.default_rng(0)
    fusion = model.get_layer("fusion")
    mid, glob, bias = fusion.get_weights()
    fusion.set_weights([mid * 8.0, glob * 60.0, bias])  # the global features weigh a lot
    out = model.get_layer("ab")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * 30.0, rng.normal(0, 0.5, bias.shape).astype(bias.dtype)])
    folder = tmp_path_factory.mktemp("run")
    path = str(folder / "model.keras")
    model.save(path)
    with open(folder / "config.json", "w", encoding="utf-8") as f:
        json.dump({"class_names": ["countryside_day", "countryside_sunset", "coast_day",
                                   "coast_sunset"]}, f)
    return path


def transform(*args, cwd=None):
    return run_transform(*args, cwd=cwd)


def errors(proc):
    """stderr lines from model_transform.py itself (not TensorFlow's log)."""
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("model_transform.py:")]


def lab_l(bgr):
    return colorspace.rgb_to_lab(bgr[..., ::-1].astype(np.float32) / 255.0)[..., 0]


def test_real_photo_keeps_size_and_lightness(tmp_path, model_path):
    photo = str(tmp_path / "hopper.jpg")
    with open(PHOTO, "rb") as src, open(photo, "wb") as dst:
        dst.write(src.read())
    out = str(tmp_path / "hopper_color.png")
    # The command line's smoke test: a real subprocess.
    proc = run_script("model_transform.py", photo, "--model", model_path, "--max-side", "256",
                      "--top-k", "2", "--compare", "--out", out)
    assert proc.returncode == 0, proc.stderr
    top = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "hopper.jpg: " in ln]
    assert len(top) == 1 and top[0].count("%") == 2 and ("coast" in top[0] or "country" in top[0])
    a, b = cv2.imread(photo), cv2.imread(out)
    assert a.shape == b.shape
    # The result is in colour, not gray...
    assert np.abs(b.astype(int) - b.mean(-1, keepdims=True)).mean() > 3
    # ...and has the input's L, up to the 8-bit rounding of the output.
    dl = np.abs(lab_l(a) - lab_l(b))
    assert dl.max() < 1.0, dl.max()
    assert (tmp_path / "hopper_color_compare.png").exists()


def test_odd_sizes_alpha_and_sixteen_bit_are_preserved(tmp_path, model_path):
    rng = np.random.default_rng(2)
    odd = colourful_image(rng, 37, 1001)
    cv2.imwrite(str(tmp_path / "odd.png"), odd)
    rgba = np.dstack([colourful_image(rng, 90, 130), rng.integers(0, 256, (90, 130), np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    deep = (colourful_image(rng, 64, 80).astype(np.uint16) * 257 + 100).clip(0, 65535)
    cv2.imwrite(str(tmp_path / "deep.png"), deep.astype(np.uint16))
    proc = transform(str(tmp_path), "--model", model_path, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    odd_out = cv2.imread(str(tmp_path / "out" / "odd_color.png"))
    assert odd_out.shape == odd.shape and np.abs(lab_l(odd_out) - lab_l(odd)).max() < 1.0
    out = cv2.imread(str(tmp_path / "out" / "a_color.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    deep_out = cv2.imread(str(tmp_path / "out" / "deep_color.png"), cv2.IMREAD_UNCHANGED)
    assert deep_out.dtype == np.uint16 and deep_out.shape == deep.shape


def test_tiny_images_and_one_pixel_strips_are_colorized_at_their_size(tmp_path, model_path):
    rng = np.random.default_rng(5)
    sizes = {"dot.png": (3, 3), "row.png": (1, 3000), "column.png": (2000, 1),
             "narrow.png": (300, 5)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (h, w, 3), np.uint8))
    proc = transform(str(tmp_path), "--model", model_path, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0 and not errors(proc), proc.stderr
    for name, (h, w) in sizes.items():
        src = cv2.imread(str(tmp_path / name))
        out = cv2.imread(str(tmp_path / "out" / name.replace(".png", "_color.png")))
        assert out.shape == (h, w, 3), name
        assert np.abs(lab_l(out) - lab_l(src)).max() < 1.0, name
        assert np.abs(out.astype(int) - out.mean(-1, keepdims=True)).mean() > 1, name


def test_the_exif_orientation_of_an_image_with_alpha_is_applied_as_pillow_does():
    from PIL import Image, ImageOps

    from colorization.image_io import decode_pixels

    rgba = np.random.default_rng(6).integers(0, 256, (5, 7, 4), np.uint8)
    for orientation in range(1, 9):
        image = Image.fromarray(rgba, "RGBA")
        exif = image.getexif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        image.save(buf, "PNG", exif=exif.tobytes())
        shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
        rgb, alpha = decode_pixels(buf.getvalue(), keep_alpha=True)
        assert np.array_equal(rgb, shown[..., :3]), orientation
        assert np.array_equal(alpha, shown[..., 3]), orientation


def test_reference_changes_the_colours(tmp_path, model_path):
    import keras

    model = inference.load_model(model_path)
    rng = np.random.default_rng(3)
    image = colourful_image(rng, 120, 160)[..., ::-1]
    gray = inference.network_input(image, 512)[None]
    day = inference.network_input(np.full((50, 50, 3), 235, np.uint8), 512)
    night = inference.network_input(np.full((50, 50, 3), 20, np.uint8), 512)
    plain = inference.Colorizer(model).predict(gray)[0]
    with_ref = inference.Colorizer(model, with_reference=True)
    ab_day, ab_night = with_ref.predict(gray, day)[0], with_ref.predict(gray, night)[0]
    ab_self = with_ref.predict(gray, gray[0])[0]
    keras.backend.clear_session()
    # Its own image as the reference is the plain colorization; another one is not.
    np.testing.assert_allclose(ab_self, plain, atol=1e-4)
    assert np.abs(ab_day - ab_night).mean() * 255 > 1.0  # more than 1 ab unit on average

    path = str(tmp_path / "img.png")
    cv2.imwrite(path, image[..., ::-1])
    cv2.imwrite(str(tmp_path / "night.png"), np.full((50, 50, 3), 20, np.uint8))
    proc = transform(path, "--model", model_path, "--reference", str(tmp_path / "night.png"),
                     "--out", str(tmp_path / "ref.png"))
    proc2 = transform(path, "--model", model_path, "--out", str(tmp_path / "plain.png"))
    assert proc.returncode == 0 and proc2.returncode == 0, proc.stderr + proc2.stderr
    a, b = cv2.imread(str(tmp_path / "ref.png")), cv2.imread(str(tmp_path / "plain.png"))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_bad_inputs_get_one_line_each_and_the_rest_is_done(tmp_path, model_path):
    rng = np.random.default_rng(4)
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), colourful_image(rng))
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    # Cut short and given an end marker: passes every marker check; the decoder fills
    # the rest with gray (baseline) or blur (progressive) and says so only on stderr.
    (tmp_path / "cut_eoi.jpg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    photo = cv2.resize(cv2.imread(os.path.join(ROOT, "resources", "photos", "astronaut.jpg")),
                       (256, 256), interpolation=cv2.INTER_AREA)  # under --max-pixels
    progressive = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    (tmp_path / "cut_progressive.jpg").write_bytes(
        progressive.tobytes()[: len(progressive) // 2] + b"\xff\xd9")
    (tmp_path / "text.jpg").write_text("not an image")
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((300, 400, 3), np.uint8))
    names = ["empty.jpg", "cut.jpg", "cut_eoi.jpg", "cut_progressive.jpg", "text.jpg",
             "big.png", "missing.jpg"]  # (a 1x1 image is colorized: the tiny-image test)
    proc = transform(str(good), *[str(tmp_path / n) for n in names], "--model", model_path,
                     "--max-pixels", "100000")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = errors(proc)
    for name in names:
        hits = [ln for ln in lines if name in ln]
        assert len(hits) == 1, (name, lines)
        assert not (tmp_path / name.replace(".", "_color.")).exists()
    assert "pixels is over the limit" in next(ln for ln in lines if "big.png" in ln)
    for name in ("cut.jpg", "cut_eoi.jpg", "cut_progressive.jpg"):
        assert "truncated" in next(ln for ln in lines if name in ln)
    assert "Corrupt JPEG data" not in proc.stderr  # libjpeg's own line is not passed on
    assert (tmp_path / "good_color.jpg").exists()
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]


def test_bad_model_and_no_model(tmp_path, monkeypatch):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), colourful_image(np.random.default_rng(5)))
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04 definitely not a model")
    (tmp_path / "notes.keras").write_text("hello")
    for bad in ("junk.keras", "notes.keras"):
        proc = transform(str(img), "--model", str(tmp_path / bad))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert len(errors(proc)) == 1 and bad in errors(proc)[0]
    # No runs/ here and no shipped model: how to train one.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(model_transform, "SHIPPED_MODEL", str(tmp_path / "missing.keras"))
    with pytest.raises(model_transform.UsageError, match="model_train.py --preset demo"):
        model_transform.default_model()
    assert model_transform.main([str(img)]) == 2
    assert not (tmp_path / "x_color.png").exists()


def edited_model(src, dst, change):
    """A copy of the .keras file src whose config.json went through change(config)."""
    import zipfile

    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for item in a.infolist():
            data = a.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            b.writestr(item, data)
    return str(dst)


def test_a_hand_edited_model_is_refused_naming_the_layer_and_the_cause(tmp_path, model_path):
    from colorization.layers import InferenceDefaults

    def layers(config):
        return config["config"]["layers"]

    def extra_argument(config):
        ours = next(la for la in layers(config)
                    if (la.get("registered_name") or "").startswith("colorization>"))
        ours["config"]["no_such_argument"] = 1

    def saturation(config):
        layers(config).append({**layers(config)[-1]})  # shape unused: refused on creation
        layers(config)[-1].update(class_name="InferenceDefaults",
                                  registered_name="colorization>InferenceDefaults",
                                  module="colorization.layers",
                                  config={"name": "inference_defaults", "saturation": 1e9})

    for name, change, words in (("extra.keras", extra_argument, "no_such_argument"),
                                ("loud.keras", saturation, "saturation 1000000000.0 is outside")):
        bad = edited_model(model_path, tmp_path / name, change)
        with pytest.raises(inference.ModelError, match=words) as caught:
            inference.load_model(bad)
        assert "layer '" in str(caught.value) and "\n" not in str(caught.value)
        assert "could not be deserialized" not in str(caught.value)
    with pytest.raises(ValueError, match="outside"):
        InferenceDefaults(saturation=-0.5)


def test_outputs_skip_existing_never_overwrite_inputs_and_mirror_folders(tmp_path, model_path):
    rng = np.random.default_rng(6)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for rel in ("a.jpg", "sub/b.jpg", "sub/c.jpg"):
        cv2.imwrite(str(tmp_path / "in" / rel), colourful_image(rng))
    out = tmp_path / "out"
    proc = transform(str(tmp_path / "in"), "--recursive", "--out", str(out), "--model",
                     model_path)
    assert proc.returncode == 0, proc.stderr
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert made == ["a_color.jpg", "sub/b_color.jpg", "sub/c_color.jpg"]
    before = (out / "a_color.jpg").stat().st_mtime_ns
    proc = transform(str(tmp_path / "in"), "--recursive", "--out", str(out), "--model",
                     model_path)
    assert proc.returncode == 0 and "3 skipped" in proc.stderr
    assert (out / "a_color.jpg").stat().st_mtime_ns == before
    # Results beside the inputs are not colorized again on the next run.
    transform(str(tmp_path / "in"), "--model", model_path)
    again = transform(str(tmp_path / "in"), "--model", model_path)
    assert "colorized 0" in again.stderr and "1 skipped" in again.stderr
    # A user's own photo named like an output, with no input beside it, is a photo.
    cv2.imwrite(str(tmp_path / "in" / "water_color.jpg"), colourful_image(rng))
    theirs = transform(str(tmp_path / "in"), "--model", model_path)
    assert theirs.returncode == 0 and "colorized 1" in theirs.stderr, theirs.stderr
    assert (tmp_path / "in" / "water_color_color.jpg").exists()
    # --out naming the input itself is refused, and the input is untouched.
    original = (tmp_path / "in" / "a.jpg").read_bytes()
    proc = transform(str(tmp_path / "in" / "a.jpg"), "--out", str(tmp_path / "in" / "a.jpg"),
                     "--model", model_path, "--overwrite")
    assert proc.returncode == 1 and "overwrite the input" in proc.stderr
    assert (tmp_path / "in" / "a.jpg").read_bytes() == original


def test_strip_upsampling_equals_whole_image_resize():
    rng = np.random.default_rng(7)
    ab = rng.uniform(0, 1, (13, 17, 2)).astype(np.float32)
    whole = cv2.resize(ab, (71, 601), interpolation=cv2.INTER_LINEAR)
    wide = cv2.resize(ab, (71, 13), interpolation=cv2.INTER_LINEAR)
    strips = np.concatenate([inference.upsample_rows(wide, top, min(256, 601 - top), 601)
                             for top in range(0, 601, 256)])
    np.testing.assert_allclose(strips, whole, atol=1e-5)
    # And the strip-wise colorization equals the one-shot colour conversion.
    pixels = colourful_image(rng, 601, 71)[..., ::-1].copy()
    lab = colorspace.rgb_to_lab(pixels.astype(np.float32) / 255.0)
    lab[..., 1:] = colorspace.model_to_ab(whole)
    expected = colorspace.to_uint8(colorspace.lab_to_rgb(colorspace.fit_chroma_to_gamut(lab)))
    got = inference.colorize_pixels(pixels, ab)
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_recursive_walk_cuts_symlink_cycles_and_skips_special_files(tmp_path, model_path):
    rng = np.random.default_rng(11)
    tree = tmp_path / "in"
    (tree / "sub").mkdir(parents=True)
    cv2.imwrite(str(tree / "a.jpg"), colourful_image(rng))
    cv2.imwrite(str(tree / "sub" / "b.jpg"), colourful_image(rng))
    os.symlink("..", tree / "sub" / "up")  # a cycle
    os.symlink(tree / "sub", tree / "sub" / "again")  # and a second way into sub
    os.mkfifo(tree / "pipe.jpg")  # would hang if it were read
    out = tmp_path / "out"
    proc = transform(str(tree), "--recursive", "--out", str(out), "--model", model_path)
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a_color.jpg", os.path.join("sub", "b_color.jpg")]
    assert "colorized 2 image(s)" in proc.stderr


def test_special_files_and_unknown_extensions_cost_one_line_each(tmp_path, model_path):
    rng = np.random.default_rng(12)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), colourful_image(rng))
    noext = tmp_path / "scan"
    noext.write_bytes(good.read_bytes())  # a PNG without an extension
    os.mkfifo(tmp_path / "pipe.png")
    proc = transform(str(tmp_path / "pipe.png"), str(noext), str(good), "--model", model_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = errors(proc)
    assert len(lines) == 2
    assert "not a regular file" in next(ln for ln in lines if "pipe.png" in ln)
    assert "without an extension" in next(ln for ln in lines if "scan" in ln)
    assert (tmp_path / "good_color.png").exists()  # the rest is done


def test_outputs_never_collide_nor_replace_an_input(tmp_path, model_path):
    rng = np.random.default_rng(13)
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), colourful_image(rng))
    out = tmp_path / "out"
    proc = transform(str(tmp_path / "one" / "x.jpg"), str(tmp_path / "two" / "x.jpg"),
                     "--out", str(out), "--model", model_path)
    assert proc.returncode == 1 and "colorized 1 image(s)" in proc.stderr
    assert len(errors(proc)) == 1 and "different --out folders" in errors(proc)[0]
    # An input named like another input's output is not replaced, even with --overwrite.
    a, a_color = tmp_path / "a.png", tmp_path / "a_color.png"
    cv2.imwrite(str(a), colourful_image(rng))
    cv2.imwrite(str(a_color), colourful_image(rng))
    before = a_color.read_bytes()
    proc = transform(str(a), str(a_color), "--overwrite", "--model", model_path)
    assert a_color.read_bytes() == before and "would overwrite another input" in proc.stderr
    # --compare never replaces an existing figure without --overwrite.
    b = tmp_path / "b.png"
    cv2.imwrite(str(b), colourful_image(rng))
    (tmp_path / "b_color_compare.png").write_bytes(b"mine")
    proc = transform(str(b), "--compare", "--model", model_path)
    assert (tmp_path / "b_color_compare.png").read_bytes() == b"mine"
    assert "1 skipped" in proc.stderr
    # A lone missing input with --out FILE is "file not found", exit 1.
    proc = transform(str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o.png"),
                     "--model", model_path)
    assert proc.returncode == 1 and "file not found" in proc.stderr


@pytest.mark.parametrize("kind", ["tiff", "gif", "jpeg_fill"])
def test_bombs_of_every_format_are_refused_from_their_header(tmp_path, model_path, kind):
    import bombs

    data = {"tiff": bombs.tiff_bomb, "gif": bombs.gif_bomb, "jpeg_fill": bombs.jpeg_fill_bomb}[
        kind]()
    ext = {"tiff": ".tif", "gif": ".gif", "jpeg_fill": ".jpg"}[kind]
    bomb = tmp_path / f"bomb{ext}"
    bomb.write_bytes(data)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), colourful_image(np.random.default_rng(14)))
    limit = ["--max-pixels", "100000000"]
    proc = transform(str(bomb), str(good), "--model", model_path, *limit)
    assert proc.returncode == 1 and "over the limit" in errors(proc)[0]
    assert (tmp_path / "good_color.png").exists()
    # ...and as the --reference image
    proc = transform(str(good), "--reference", str(bomb), "--overwrite", "--model", model_path,
                     *limit)
    assert proc.returncode == 1 and "over the limit" in proc.stderr and "reference" in proc.stderr


def test_a_bomb_under_the_pixel_limit_is_refused_by_its_size_and_a_real_large_image_is_not(
        tmp_path, model_path):
    import bombs

    from colorization.image_io import ImageError, check_pixel_limit

    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(bombs.gif_bomb())  # 20000 x 20000 (under the default limit) in 62 bytes
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), colourful_image(np.random.default_rng(16)))
    proc = transform(str(bomb), str(good), "--model", model_path)  # the default limit
    assert proc.returncode == 1 and "decompression bomb" in errors(proc)[0], proc.stderr
    assert "claimed in 62 bytes" in errors(proc)[0]
    assert (tmp_path / "good_color.png").exists()
    # Real, very compressible large images pass: a flat 6000 x 4000 PNG (measured 300
    # pixels a byte) and a blank 1-bit 20000 x 20000 PNG, the most compact kind (8,200).
    flat = cv2.imencode(".png", np.full((4000, 6000, 3), 120, np.uint8),
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    check_pixel_limit(flat, 500_000_000)
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG", optimize=True)
    check_pixel_limit(buffer.getvalue(), 500_000_000)
    with pytest.raises(ImageError, match="decompression bomb"):
        check_pixel_limit(bombs.gif_bomb(), 500_000_000)


def test_reruns_skip_compare_figures_and_foreign_models_are_refused(tmp_path, model_path):
    import keras

    rng = np.random.default_rng(15)
    cv2.imwrite(str(tmp_path / "p.png"), colourful_image(rng))
    for _ in range(2):  # the second run finds p_color.png and p_color_compare.png
        proc = transform(str(tmp_path), "--compare", "--overwrite", "--model", model_path)
        assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["p.png", "p_color.png", "p_color_compare.png"]
    # A model with an "ab" output that is not one of this project's networks.
    gray = keras.Input((None, None, 1), name="gray")
    ab = keras.layers.Conv2D(2, 1, activation="sigmoid", name="ab")(gray)
    keras.Model(gray, {"ab": ab}, name="someone_else").save(tmp_path / "foreign.keras")
    (tmp_path / "broken.keras").write_bytes(b"\x00" * 100)
    for name, words in (("foreign.keras", "not a colorization model of this project"),
                        ("broken.keras", "not a Keras model file")):
        proc = transform(str(tmp_path / "p.png"), "--model", str(tmp_path / name),
                         "--overwrite")
        assert proc.returncode == 1 and words in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("ext, dtype, with_alpha", [(".png", np.uint8, False),
                                                     (".png", np.uint8, True),
                                                     (".png", np.uint16, False),
                                                     (".jpg", np.uint16, False)])
def test_in_place_encoding_gives_the_same_file_and_leaves_the_result_as_it_was(
        ext, dtype, with_alpha):
    rng = np.random.default_rng(3)
    top = 65535 if dtype == np.uint16 else 255
    rgb = rng.integers(0, top + 1, (37, 53, 3)).astype(dtype)
    alpha = rng.integers(0, top + 1, (37, 53)).astype(dtype) if with_alpha else None
    kept = rgb.copy()
    copied = model_transform.encode_output("x" + ext, rgb, alpha)
    swapped = model_transform.encode_output("x" + ext, rgb, alpha, in_place=True)
    np.testing.assert_array_equal(rgb, kept)  # swapped to BGR for the encoder and back
    assert bytes(swapped) == bytes(copied)
    if ext == ".png":  # lossless: the decoded file is the result
        decoded, got_alpha = model_transform.decode_pixels(bytes(swapped), keep_alpha=True)
        np.testing.assert_array_equal(decoded, kept)
        assert (got_alpha is None) == (alpha is None)


def test_colorizing_in_strips_equals_one_strip(monkeypatch):
    rng = np.random.default_rng(4)
    pixels = colourful_image(rng, 401, 300)[..., ::-1].copy()
    assert inference.strip_rows(300) < 401  # two strips, the second one shorter
    ab = rng.random((40, 30, 2)).astype(np.float32)
    strips = inference.colorize_pixels(pixels, ab)
    monkeypatch.setattr(inference, "STRIP_PIXELS", 401 * 300)
    np.testing.assert_array_equal(strips, inference.colorize_pixels(pixels, ab))
