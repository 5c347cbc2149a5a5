import keras
import numpy as np
import pytest

import build_model
from colorization.efficientnet import LiteGrayInput, LiteRGBInput
from colorization.layers import CropToHalfOf, Fusion, PadToMultiple
from config import get_config


@pytest.fixture(autouse=True)
def float32_policy():
    build_model.set_precision("float32")
    yield
    build_model.set_precision("float32")


def tiny_cfg(classes=4):
    return get_config("demo", model={"width": 0.0625, "num_classes": classes})


@pytest.mark.slow
def test_paper_preset_size_and_flops():
    cfg = get_config("paper")
    model = build_model.build_model(cfg)
    rows = build_model.layer_table(model)
    total = sum(r[2] for r in rows)
    head = sum(r[2] for r in rows if r[0] in ("class_fc1", "scene"))
    assert abs(total - 42.35e6) / 42.35e6 < 0.005
    assert abs(total - head - 42.17e6) / 42.17e6 < 0.005
    gflops = sum(r[3] for r in rows) / 1e9
    assert 16.9 < gflops < 17.3
    no_head = build_model.build_model(get_config("paper", model={"num_classes": 0}))
    assert sum(r[2] for r in build_model.layer_table(no_head)) == total - head
    assert "scene" not in no_head.output
    text = build_model.summary_text(cfg, model)
    assert "42.35M" in text and "GFLOP" in text


@pytest.mark.parametrize("h, w", [(224, 224), (256, 256), (200, 312), (7, 9)])
def test_any_size_output_shapes(h, w):
    model = build_model.any_size_model(build_model.build_model(tiny_cfg()))
    out = model.predict(np.random.rand(2, h, w, 1).astype("float32"), verbose=0)
    assert out["ab"].shape == (2, (h + 1) // 2, (w + 1) // 2, 2)
    assert out["scene"].shape == (2, 4)
    assert np.all((out["ab"] >= 0) & (out["ab"] <= 1))
    np.testing.assert_allclose(out["scene"].sum(-1), 1.0, atol=1e-5)


def test_shared_and_unshared_low_level_paths_agree_at_224():
    trained = build_model.build_model(tiny_cfg())
    flops = sum(r[3] for r in build_model.layer_table(trained))
    x = np.random.default_rng(0).random((2, 224, 224, 1)).astype("float32")
    shared = trained.predict(x, verbose=0)
    unshared = build_model.any_size_model(trained).predict(x, verbose=0)
    np.testing.assert_allclose(shared["ab"], unshared["ab"], atol=1e-5)
    np.testing.assert_allclose(shared["scene"], unshared["scene"], atol=1e-5)
    # The shared model runs the low-level layers once, the any-size model twice,
    # and building the latter does not change what the former counts.
    assert len(build_model._nodes_in(trained, trained.get_layer("low1"))) == 1
    assert sum(r[3] for r in build_model.layer_table(trained)) == flops


def test_fusion_equals_naive_per_pixel_concatenation():
    rng = np.random.default_rng(1)
    mid = rng.standard_normal((3, 5, 7, 6)).astype("float32")
    glob = rng.standard_normal((3, 4)).astype("float32")
    layer = Fusion(8)
    out = keras.ops.convert_to_numpy(layer([mid, glob]))
    w = np.concatenate([keras.ops.convert_to_numpy(layer.global_kernel),
                        keras.ops.convert_to_numpy(layer.mid_kernel)])
    b = rng.standard_normal(8).astype("float32")
    layer.bias.assign(b)
    out = keras.ops.convert_to_numpy(layer([mid, glob]))
    naive = np.zeros((3, 5, 7, 8), np.float32)
    for n in range(3):
        for u in range(5):
            for v in range(7):
                naive[n, u, v] = b + np.concatenate([glob[n], mid[n, u, v]]) @ w
    np.testing.assert_allclose(out, naive, atol=1e-5)


@pytest.mark.parametrize("layer", [Fusion(16, name="f"), PadToMultiple(8, name="p"),
                                   CropToHalfOf(name="c"), LiteGrayInput(name="g"),
                                   LiteRGBInput(name="r")])
def test_custom_layers_round_trip_their_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


def test_keras_file_round_trip_in_safe_mode(tmp_path):
    model = build_model.build_model(tiny_cfg())
    x = np.random.default_rng(2).random((2, 224, 224, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(before["ab"], after["ab"])
    np.testing.assert_array_equal(before["scene"], after["scene"])
    big = np.random.default_rng(3).random((1, 96, 160, 1)).astype("float32")
    np.testing.assert_allclose(build_model.any_size_model(model).predict(big, verbose=0)["ab"],
                               build_model.any_size_model(loaded).predict(big, verbose=0)["ab"],
                               atol=1e-6)


@pytest.mark.parametrize("policy, compute", [("mixed_float16", "float16"),
                                             ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_dtypes(policy, compute):
    build_model.set_precision(policy)
    model = build_model.build_model(tiny_cfg())
    assert all(w.dtype == "float32" for w in model.weights)
    assert model.get_layer("low3").compute_dtype == compute
    assert model.get_layer("low3").output.dtype == compute
    out = model(np.random.rand(2, 224, 224, 1).astype("float32"))
    assert out["ab"].dtype == "float32" and out["scene"].dtype == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(out["ab"])).all()


def test_global_features_from_another_image_change_the_output():
    model = build_model.build_model(tiny_cfg())
    styled = build_model.any_size_model(model, with_global_input=True)
    rng = np.random.default_rng(4)
    x = rng.random((1, 64, 80, 1)).astype("float32")
    same = styled.predict({"gray": x, "global_gray": x}, verbose=0)["ab"]
    plain = build_model.any_size_model(model).predict(x, verbose=0)["ab"]
    np.testing.assert_allclose(same, plain, atol=1e-5)
    other = styled.predict({"gray": x, "global_gray": 1 - x}, verbose=0)["ab"]
    assert np.abs(other - same).max() > 1e-6  # untrained: small, but far above rounding


def test_bilinear_upsampling_equals_keras_and_compiles_for_any_size():
    from colorization.layers import BilinearUpSampling

    rng = np.random.default_rng(0)
    for factor in (2, 4):
        x = rng.random((2, 7, 5, 3)).astype(np.float32)
        want = keras.ops.convert_to_numpy(
            keras.layers.UpSampling2D(factor, interpolation="bilinear")(x))
        layer = BilinearUpSampling(factor)
        # Both paths: the backend's resize (sizes known) and the blends (any size).
        for got in (layer(x), layer.blend(x)):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, atol=1e-6)
    gray = keras.Input((None, None, 3))
    model = keras.Model(gray, BilinearUpSampling(4)(gray))
    for h, w in [(3, 4), (6, 2), (5, 9)]:  # one compiled function, shapes unknown
        x = rng.random((1, h, w, 3)).astype(np.float32)
        want = keras.ops.convert_to_numpy(
            keras.layers.UpSampling2D(4, interpolation="bilinear")(x))
        np.testing.assert_allclose(model.predict_on_batch(x), want, atol=1e-6)
    # The same run-time-size path (the backend's resize on TensorFlow) in bfloat16.
    model = keras.Model(gray, BilinearUpSampling(4, dtype="mixed_bfloat16")(gray))
    got = model.predict_on_batch(x)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=0.01)


def test_depthwise_convolutions_count_their_flops():
    """By hand: a 3x3 depthwise convolution of 4 channels at stride 2 on 8x8 gives
    4x4x4 outputs of 9 multiply-adds each: 2 * 9 * 4 * 16 = 1,152 FLOPs; the 1x1
    convolution after it 2 * 4 * 6 * 16 = 768. EfficientNet-Lite0 then counts 0.77
    GFLOP at 224 x 224, about twice its published 0.4 billion multiply-adds."""
    x = keras.Input((8, 8, 4))
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
    y = keras.layers.Conv2D(6, 1, use_bias=False)(y)
    rows = build_model.layer_table(keras.Model(x, y))
    assert [r[3] for r in rows] == [1152, 768]
    from colorization import efficientnet

    lite0 = efficientnet.build_classifier("lite0", 224)
    assert 0.70e9 < sum(r[3] for r in build_model.layer_table(lite0)) < 0.85e9
