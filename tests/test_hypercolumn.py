"""Larsson et al. and Varga & Szirányi on VGG-16 hypercolumns (hypercolumn.py):
weights from a local file, training, any-size inference, transform and evaluate."""

import os
import subprocess
import sys
import warnings

import keras
import matplotlib.cbook
import numpy as np
import pytest
from conftest import ROOT

import build_model
import model_train
from colorization import hypercolumn
from config import get_config

PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture(autouse=True)
def float32_policy():
    build_model.set_precision("float32")


# ---------------------------------------------------------------- VGG-16 weights


def write_keras2_weights(model, path):
    """The layout of Keras 2's save_weights, that of the ImageNet file Keras downloads
    (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = ([f"{layer.name}/{w}:0".encode() for w in ("kernel", "bias")]
                     if layer.weights else [])
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights(), strict=True):
                group.create_dataset(name.decode(), data=value)


@pytest.mark.parametrize("layout", ["keras3", "keras2"])
def test_vgg_weights_load_from_a_local_file(tmp_path, layout):
    keras.utils.set_random_seed(1)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    if layout == "keras3":
        path = str(tmp_path / "vgg16_notop.weights.h5")
        vgg.save_weights(path)
    else:
        path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
        write_keras2_weights(vgg, path)
    for preset, convs in (("larsson", 13), ("varga", 7)):
        model = build_model.build_model(get_config(preset))
        names = hypercolumn.backbone_layers(model)
        assert len(names) == convs
        before = model.get_layer("block1_conv1").get_weights()[0].copy()
        line = hypercolumn.load_backbone_weights(model, path, log=lambda _: None)
        assert f"{convs} convolutions loaded" in line
        for name in names:
            for got, want in zip(model.get_layer(name).get_weights(),
                                 vgg.get_layer(name).get_weights(), strict=True):
                np.testing.assert_array_equal(got, want)
        assert not np.array_equal(before, model.get_layer("block1_conv1").get_weights()[0])


def test_vgg_weights_errors_and_the_offline_fallback(tmp_path, monkeypatch):
    model = build_model.build_model(get_config("varga"))
    with pytest.raises(hypercolumn.WeightsError, match="not found"):
        hypercolumn.load_backbone_weights(model, str(tmp_path / "missing.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an HDF5 file")
    with pytest.raises(hypercolumn.WeightsError, match="cannot load"):
        hypercolumn.load_backbone_weights(model, str(bad))
    narrow = build_model.build_model(get_config("varga-demo"))
    with pytest.raises(hypercolumn.WeightsError, match="full-width"):
        hypercolumn.load_backbone_weights(narrow, str(bad))

    # Offline: "imagenet" cannot be downloaded -> random weights and a loud warning.
    # (The download is simulated failing; tests never download.)
    def offline(**kwargs):
        assert kwargs["weights"] == "imagenet"
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    before = model.get_layer("block3_conv3").get_weights()[0].copy()
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hypercolumn.load_backbone_weights(model, "imagenet", log=lines.append)
    assert any("RANDOM weights" in str(w.message) for w in caught)
    assert "--vgg-weights" in lines[0] and "no network" in lines[0]
    np.testing.assert_array_equal(before, model.get_layer("block3_conv3").get_weights()[0])
    assert "random" in hypercolumn.load_backbone_weights(model, "none", log=None)


def test_model_train_refuses_pretrained_weights_for_a_narrowed_vgg(tmp_path, scenes_dataset):
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"x")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "model_train.py"), "--preset",
                           "larsson-demo", "--data", scenes_dataset, "--run-dir",
                           str(tmp_path / "run"), "--vgg-weights", str(weights)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "need the full-width network" in proc.stderr.splitlines()[-1]


@pytest.mark.slow
def test_summary_prints_size_and_gflops(capsys):
    for preset, params, gflops in (("larsson", "16.29M", "40.56"), ("varga", "2.27M", "72.69")):
        assert build_model.main(["--preset", preset, "--summary"]) == 0
        out = capsys.readouterr().out
        assert "block5_conv3" in out if preset == "larsson" else "varga_conv2" in out
        assert f"({params})" in out and f"{gflops} GFLOP per 224x224" in out


# ---------------------------------------------------------------- training and inference


def test_lab_marginals_train_on_a_fixed_batch():
    cfg = get_config("larsson-demo", model={"output": "lab_hist"}, train={"learning_rate": 5e-3})
    keras.utils.set_random_seed(0)
    model = build_model.build_model(cfg)
    assert model.output["lab_hist"].shape[1:] == (56, 56, 64)
    model_train.compile_model(model, cfg, with_labels=False)
    x = np.random.default_rng(1).random((4, 224, 224, 1)).astype(np.float32)
    colours = np.array([[20, -30], [-40, 10], [50, 60], [0, 0]], np.float32)
    y = ((np.broadcast_to(colours[:, None, None], (4, 56, 56, 2)) + 128) / 255).astype(np.float32)
    first = float(np.ravel(model.train_on_batch(x, {"lab_hist": y}))[0])
    for _ in range(15):
        last = float(np.ravel(model.train_on_batch(x, {"lab_hist": y}))[0])
    # Measured: 6.93 (2 log 32: the zero-initialised output is uniform) -> 2.81.
    assert first == pytest.approx(2 * np.log(32), rel=1e-3)
    assert last < 0.7 * first, (first, last)
