"""convert_model.py on files in the layout of Zhang et al.'s Caffe release, checked
against OpenCV's own Caffe importer (an independent reader of the format)."""

import os

import cv2
import numpy as np
import pytest
from caffe_release import caffemodel, prototxt, pts_in_hull
from conftest import ROOT, assert_refused, run_main

import convert_model
import evaluate
import model_transform
from colorization import systems
from colorization.inference import load_model

PHOTO = os.path.join(ROOT, "resources", "photos", "astronaut.jpg")


def write_release(folder, width=1.0, with_decoding=True, seed=0):
    os.makedirs(folder, exist_ok=True)
    pts = pts_in_hull(seed)
    paths = {"prototxt": os.path.join(folder, "colorization_deploy_v2.prototxt"),
             "caffemodel": os.path.join(folder, "colorization_release_v2.caffemodel"),
             "npy": os.path.join(folder, "pts_in_hull.npy")}
    with open(paths["prototxt"], "w", encoding="utf-8") as f:
        f.write(prototxt(width))
    with open(paths["caffemodel"], "wb") as f:
        f.write(caffemodel(width, seed=seed, pts=pts, with_decoding=with_decoding))
    np.save(paths["npy"], pts)
    return paths


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The release's three files at full width, and the converted model."""
    folder = tmp_path_factory.mktemp("zhang_caffe")
    paths = write_release(str(folder))
    out = str(folder / "zhang-caffe.keras")
    done = run_main(convert_model.main, [paths["prototxt"], paths["caffemodel"], paths["npy"],
                                         "--out", out])
    assert done.returncode == 0, done.stderr
    assert "313 ab bins" in done.stdout and "T = 0.3837" in done.stdout
    return paths, out


def photo_l(size=224):
    """L (0-100) of the real photo at size x size, as Zhang et al.'s demo prepares it."""
    bgr = cv2.resize(cv2.imread(PHOTO), (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)[..., 0]


def test_converted_model_equals_opencvs_reading_of_the_release(release):
    paths, out = release
    net = cv2.dnn.readNetFromCaffe(paths["prototxt"], paths["caffemodel"])
    lightness = photo_l()
    net.setInput(cv2.dnn.blobFromImage(lightness - 50.0))  # the release reads L - 50
    logits_cv, ab_cv = net.forward(["conv8_313", "class8_ab"])
    model = load_model(out)  # safe mode, with the project's layers
    logits = np.asarray(model(lightness[None, ..., None] / 100.0)["ab_bins"])[0]
    ref = logits_cv[0].transpose(1, 2, 0)
    # Measured: 7e-6 of the largest logit (181), 0.03 ab units after decoding.
    assert np.max(np.abs(logits - ref)) <= 1e-4 * np.max(np.abs(ref))
    _, space = systems.of_model(model)
    ab = systems.decoded_ab01({"ab_bins": logits[None]}, output=space)[0] * 255.0 - 128.0
    assert np.max(np.abs(ab - ab_cv[0].transpose(1, 2, 0))) <= 0.2
    assert np.max(np.abs(ab_cv)) > 20  # colour, not a trivially gray output


def test_converted_model_colorizes_any_size_and_evaluates(release, tmp_path):
    _, model_path = release
    folder = tmp_path / "photos"
    folder.mkdir()
    bgr = cv2.imread(PHOTO)
    cv2.imwrite(str(folder / "wide.jpg"), cv2.resize(bgr, (301, 173)))
    cv2.imwrite(str(folder / "tall.png"), cv2.resize(bgr, (130, 250)))
    out = tmp_path / "out"
    done = run_main(model_transform.main, [str(folder), "--model", model_path, "--out",
                                           str(out), "--temperature", "0.5"])
    assert done.returncode == 0, done.stderr
    for name, shape in (("wide_color.jpg", (173, 301, 3)), ("tall_color.png", (250, 130, 3))):
        result = cv2.imread(str(out / name))
        assert result is not None and result.shape == shape, name
        lab = cv2.cvtColor(result, cv2.COLOR_BGR2Lab).astype(np.float32)
        assert np.std(lab[..., 1]) + np.std(lab[..., 2]) > 1.0  # not gray
    scored = run_main(evaluate.main, ["--images", str(folder), "--model", model_path,
                                      "--out", str(tmp_path / "eval")])
    assert scored.returncode == 0, scored.stderr
    assert "AuC" in scored.stdout or "auc" in scored.stdout.lower()


def run_convert(*args):
    return run_main(convert_model.main, [str(a) for a in args])


def test_bad_files_give_one_line_and_write_nothing(tmp_path):
    paths = write_release(str(tmp_path / "small"), width=0.125)
    out = tmp_path / "m.keras"
    with open(paths["caffemodel"], "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.caffemodel"
    noise.write_bytes(b"\x0a" + np.random.default_rng(0).bytes(5000))
    torch7 = tmp_path / "colornet.t7"
    torch7.write_bytes(b"\x03\x00\x00\x00\x01\x00\x00\x00" + bytes(64))
    other = tmp_path / "other.prototxt"
    # Another network: conv2_2 without its stride of 2.
    other.write_text("\n".join(line.replace("stride: 2", "stride: 1")
                               if 'name: "conv2_2"' in line else line
                               for line in prototxt(0.125).splitlines()), encoding="utf-8")
    assert other.read_text(encoding="utf-8").strip() != prototxt(0.125).strip()
    no_bins = write_release(str(tmp_path / "nobins"), width=0.125, with_decoding=False)
    cases = {
        "truncated": ([truncated, paths["npy"]], "caffemodel"),
        "noise": ([noise, paths["npy"]], "noise.caffemodel"),
        "torch": ([torch7], "Torch 7"),
        "other network": ([other, paths["caffemodel"], paths["npy"]], "stride"),
        "no bins": ([no_bins["caffemodel"]], "pts_in_hull.npy"),
        "no weights": ([paths["prototxt"], paths["npy"]], "no .caffemodel"),
        "missing": ([tmp_path / "absent.caffemodel"], "no such file"),
        "folder": ([tmp_path], "is a folder"),
        "device": (["/dev/zero"], "not a regular file"),
    }
    for case, (sources, words) in cases.items():
        assert_refused(run_convert(*sources, "--out", out), "convert_model.py", words, out,
                       tmp_path, case)
    # The small release converts, and without the prototxt too (the caffemodel
    # carries each layer's parameters).
    done = run_convert(paths["caffemodel"], paths["npy"], "--out", out)
    assert done.returncode == 0 and "width 0.125" in done.stdout, done.stderr
