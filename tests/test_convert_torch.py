"""convert_model.py on files in the layout of Iizuka et al.'s Torch 7 release
(tests/torch_release.py writes them), read by the torchfile package and checked
against a NumPy forward pass of the same graph written from Torch's layer
definitions (NCHW)."""

import os

import cv2
import numpy as np
import pytest
import torch_release as tr
from conftest import ROOT, assert_refused, run_main

import convert_model
import evaluate
import model_transform
from build_model import any_size_model
from colorization.colorspace import rgb_to_lab
from colorization.inference import load_model

PHOTO = os.path.join(ROOT, "resources", "photos", "astronaut.jpg")


def write(path, **kwargs):
    top, order, outputs = tr.release(**kwargs)
    with open(path, "wb") as f:
        f.write(tr.serialize(top))
    return top, order, outputs


def convert(*args):
    return run_main(convert_model.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """A release at width 1/4 with a 5-class scene head, and its converted model."""
    folder = tmp_path_factory.mktemp("iizuka_torch")
    source = folder / "colornet.t7"
    top, order, outputs = write(source, width=0.25, seed=1, num_classes=5)
    out = folder / "colornet.keras"
    names = folder / "categories.csv"  # the Places205 list's layout, out of order
    names.write_text("/b/beach 1\n/a/abbey 0\n/c/coast 2\n/f/forest_path 3\n"
                     "/a/apartment_building/outdoor 4\n", encoding="utf-8")
    done = convert(source, "--out", out, "--class-names", names)
    assert done.returncode == 0, done.stderr
    assert "Torch 7 release" in done.stdout and "5-class scene head" in done.stdout
    wrong = convert(source, "--out", folder / "x.keras", "--class-names", PHOTO)
    assert wrong.returncode == 2 and not (folder / "x.keras").exists()
    return top, order, outputs, str(out)


def gray_photo(h, w):
    """(sRGB gray values in [0, 1], L / 100) of the real photo at h x w."""
    gray = cv2.cvtColor(cv2.imread(PHOTO), cv2.COLOR_BGR2GRAY)
    v = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return v, rgb_to_lab(np.repeat(v[..., None], 3, 2))[..., :1] / 100.0


def compare(model_path, top, order, outputs, sizes):
    """Largest |difference| of ab01 and of the scene probabilities between the
    converted model and the NumPy reference, over the sizes."""
    net = any_size_model(load_model(model_path), 224, with_global_input=True)
    worst_ab = worst_scene = 0.0
    g_v, g_l = gray_photo(224, 224)
    for h, w in sizes:
        v, lightness = gray_photo(h, w)
        ref = tr.forward(order, outputs, g_v - top["mean"], v - top["mean"])
        out = net.predict_on_batch({"gray": lightness[None], "global_gray": g_l[None]})
        want = ((2.0 * ref[0] - 1.0) * 100.0 + 128.0) / 255.0  # ab = (2 o - 1) * 100
        assert out["ab"].shape == (1, h // 2, w // 2, 2)
        worst_ab = max(worst_ab, float(np.max(np.abs(out["ab"][0] - want.transpose(1, 2, 0)))))
        assert np.std(want) > 0.02  # the reference is not flat
        if len(ref) > 1:
            worst_scene = max(worst_scene, float(np.max(np.abs(out["scene"][0] - ref[1]))))
    return worst_ab, worst_scene


def test_converted_release_equals_the_torch_reference(small_release):
    top, order, outputs, out = small_release
    ab, scene = compare(out, top, order, outputs, [(224, 224), (136, 200)])
    # Measured: 5.4e-7 in ab01 (about 1e-4 ab units), 1.5e-7 in the class probabilities.
    assert ab < 1e-5 and scene < 1e-5, (ab, scene)


def test_older_layout_and_another_graph_convert_the_same(tmp_path):
    """running_std batch norms, batch norm after the linear layers, and a join
    that takes the global features first: the mapping reads the graph, not a
    fixed layout."""
    source = tmp_path / "old.t7"
    top, order, outputs = write(source, width=0.125, seed=2, old_bn=True, fc_bn=True,
                                global_first=True)
    out = tmp_path / "old.keras"
    done = convert(source, "--out", out)
    assert done.returncode == 0 and "no scene head" in done.stdout, done.stderr
    ab, _ = compare(str(out), top, order, outputs, [(96, 160)])
    assert ab < 1e-5, ab  # measured 2.6e-6


def test_converted_release_colorizes_any_size_with_a_reference_and_evaluates(small_release,
                                                                             tmp_path):
    *_, model_path = small_release
    folder = tmp_path / "photos"
    folder.mkdir()
    bgr = cv2.imread(PHOTO)
    cv2.imwrite(str(folder / "odd.jpg"), cv2.resize(bgr, (301, 173)))  # not a multiple of 8
    cv2.imwrite(str(tmp_path / "style.png"), cv2.resize(bgr[::-1, ::-1], (200, 200)))
    plain = run_main(model_transform.main, [str(folder / "odd.jpg"), "--model", model_path,
                                            "--out", str(tmp_path / "plain.png"),
                                            "--top-k", "2"])
    styled = run_main(model_transform.main, [str(folder / "odd.jpg"), "--model", model_path,
                                             "--out", str(tmp_path / "styled.png"),
                                             "--reference", str(tmp_path / "style.png")])
    assert plain.returncode == 0 and styled.returncode == 0, plain.stderr + styled.stderr
    # The scene head's top 2, named from the list the model carries.
    top_k = [ln for ln in plain.stdout.splitlines() if "%" in ln]
    assert top_k and any(n in top_k[0] for n in ("abbey", "beach", "coast", "forest_path",
                                                  "apartment_building/outdoor")), plain.stdout
    a, b = (cv2.imread(str(tmp_path / n)) for n in ("plain.png", "styled.png"))
    assert a.shape == b.shape == (173, 301, 3)
    lab_a = cv2.cvtColor(a, cv2.COLOR_BGR2Lab).astype(np.float32)
    assert np.std(lab_a[..., 1]) + np.std(lab_a[..., 2]) > 1.0  # colour, not gray
    # The photo's own lightness is kept; the reference changes the colours.
    assert np.abs(lab_a[..., 0] - cv2.cvtColor(cv2.imread(str(folder / "odd.jpg")),
                                               cv2.COLOR_BGR2Lab)[..., 0]).mean() < 2.0
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5
    scored = run_main(evaluate.main, ["--images", str(folder), "--model", model_path,
                                      "--out", str(tmp_path / "eval"), "--ablate-global"])
    assert scored.returncode == 0, scored.stderr
    assert "global features ablated" in scored.stdout or "ablat" in scored.stdout


def test_bad_torch_files_give_one_line_and_write_nothing(tmp_path):
    good = tmp_path / "colornet.t7"
    write(good, width=0.125, seed=3)
    data = good.read_bytes()
    (tmp_path / "truncated.t7").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut_header.t7").write_bytes(data[:40])
    noise = np.random.default_rng(0).bytes(4000)
    (tmp_path / "noise.t7").write_bytes(b"\x03\x00\x00\x00\x01\x00\x00\x00" + noise)
    (tmp_path / "table.t7").write_bytes(tr.serialize({"model": {"not": "a graph"},
                                                      "mean": 0.5}))
    # Another network: the release with its second low-level convolution at stride 2.
    top, order, _ = tr.release(width=0.125, seed=3)
    order[2].module.fields["modules"][3].fields.update(dW=2, dH=2)
    (tmp_path / "strided.t7").write_bytes(tr.serialize(top))
    # A tensor that claims more elements than its storage holds.
    small = tr.Obj("nn.Linear", weight=tr.Tensor(storage=tr.Storage(np.zeros(4)), shape=(8, 8)))
    (tmp_path / "overrun.t7").write_bytes(tr.serialize({"model": small, "mean": 0.5}))
    # A storage that claims 2^40 elements (4 TB) in a file of a few hundred bytes.
    claims = tr.serialize({"model": small, "mean": 0.5})
    at = claims.index(b"torch.FloatStorage") + len(b"torch.FloatStorage")
    (tmp_path / "claims.t7").write_bytes(claims[:at] + (1 << 40).to_bytes(8, "little")
                                         + claims[at + 8:])
    out = tmp_path / "m.keras"
    cases = {"truncated.t7": "Torch 7", "cut_header.t7": "Torch 7", "noise.t7": "Torch 7",
             "table.t7": "gModule", "strided.t7": "stride", "overrun.t7": "storage",
             "claims.t7": "more than the file holds"}
    for name, words in cases.items():
        assert_refused(convert(tmp_path / name, "--out", out), "convert_model.py", words, out,
                       tmp_path, name)
    two = convert(good, good, "--out", out)
    assert two.returncode == 2 and "alone" in two.stderr


@pytest.mark.slow
def test_full_width_release_converts_and_equals_the_reference(tmp_path):
    """The release's own size: 42M weights, about 170 MB in Torch's format."""
    source = tmp_path / "colornet.t7"
    top, order, outputs = write(source, width=1.0, seed=4, num_classes=205)
    out = tmp_path / "colornet.keras"
    done = convert(source, "--out", out)
    assert done.returncode == 0 and "width 1," in done.stdout, done.stderr
    ab, scene = compare(str(out), top, order, outputs, [(224, 224)])
    assert ab < 1e-5 and scene < 1e-5, (ab, scene)  # measured 1.3e-6 and 6e-8


def test_lightness_to_luma_inverts_skimage_lightness():
    """The release reads gray sRGB values; the project feeds L / 100."""
    import keras
    from skimage.color import rgb2lab

    from colorization.layers import LightnessToLuma

    v = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    lightness = rgb2lab(np.repeat(v[None, :, None], 3, 2))[..., :1] / 100.0
    luma = keras.ops.convert_to_numpy(LightnessToLuma(0.25)(lightness.astype(np.float32)))
    assert np.max(np.abs(luma[0, :, 0] + 0.25 - v)) < 2e-6


def test_resizing_layers_equal_opencvs_bilinear():
    import keras

    from colorization.layers import ResizeToFractionOf, ResizeToMultiple

    rng = np.random.default_rng(0)
    gray = keras.Input((None, None, 1))
    to8 = keras.Model(gray, ResizeToMultiple(8)(gray))
    for h, w in ((64, 48), (67, 50), (5, 3), (123, 301)):
        x = rng.random((1, h, w, 1), dtype=np.float32)
        y = to8.predict_on_batch(x)
        want = (max(8, round(h / 8) * 8), max(8, round(w / 8) * 8))
        assert y.shape[1:3] == want
        ref = cv2.resize(x[0, ..., 0], want[::-1], interpolation=cv2.INTER_LINEAR)
        assert np.max(np.abs(y[0, ..., 0] - ref)) < 1e-4
    x = rng.random((1, 40, 56, 2), dtype=np.float32)
    image = np.zeros((1, 75, 117, 1), np.float32)
    y = keras.ops.convert_to_numpy(ResizeToFractionOf(2)([x, image]))
    assert y.shape == (1, 38, 59, 2)
    ref = cv2.resize(x[0], (59, 38), interpolation=cv2.INTER_LINEAR)
    assert np.max(np.abs(y[0] - ref)) < 1e-4
