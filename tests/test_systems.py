"""The systems registry and what every registered system must do: build under every
dtype policy, round-trip its layers' configs, resolve from a config and from a
saved model; config round trips; the U, V target; a smoke test of each bench.py
benchmark on small sizes."""

import json
import re

import keras
import numpy as np
import pytest
from conftest import run_main

import bench
import build_model
import read_input
from colorization import colorspace, layers, systems
from colorization.ab_bins import RebalancedSoftCrossEntropy, gamut_bins
from colorization.histograms import HistogramKL
from config import PRESETS, from_dict, get_config, to_dict

SYSTEMS = [(n, o) for n, network in systems.NETWORKS.items() for o in network.outputs]
TINY = {"width": 0.0625, "backbone_weights": "none"}


def tiny_cfg(network, output, classes=0):
    return get_config("demo", model={**TINY, "network": network, "output": output,
                                     "num_classes": classes})


@pytest.mark.parametrize("network, output", SYSTEMS)
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_every_system_builds_under_every_policy_with_float32_outputs(network, output, policy):
    build_model.set_precision(policy)
    try:
        model = build_model.build_model(tiny_cfg(network, output, 3), input_size=64)
        x = np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32)
        out = model(x, training=False)
    finally:
        build_model.set_precision("float32")
    net, space = systems.NETWORKS[network], systems.OUTPUTS[output]
    colour = out[output]
    side = 64 // net.output_stride
    assert tuple(colour.shape) == (2, side, side, space.channels())
    assert keras.backend.standardize_dtype(colour.dtype) == "float32"  # the losses need it
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(colour)))
    assert ("scene" in out) == net.has_scene_head
    assert systems.of_model(model) == (net, space)
    ab = systems.decoded_ab01(out, gray=x)
    assert ab.shape == (2, side, side, 2) and np.all((ab >= 0) & (ab <= 1))


@pytest.mark.parametrize("network, output", SYSTEMS)
def test_a_saved_model_of_every_system_resolves_and_runs_at_any_size(network, output, tmp_path):
    from colorization import inference

    model = build_model.build_model(tiny_cfg(network, output))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = inference.load_model(path)  # safe mode, project layers registered
    assert systems.of_model(loaded) == (systems.NETWORKS[network], systems.OUTPUTS[output])
    ab, _ = inference.Colorizer(loaded).predict(np.random.rand(1, 45, 61, 1).astype("float32"))
    stride = systems.NETWORKS[network].output_stride
    assert ab.shape == (1, -(-45 // stride), -(-61 // stride), 2)


def test_resolve_names_the_choices_for_unknown_or_unsupported_pairs():
    with pytest.raises(ValueError, match="unknown network 'nope'"):
        systems.resolve(get_config("demo", model={"network": "nope"}))
    with pytest.raises(ValueError, match="unknown output 'rgb'"):
        systems.resolve(get_config("demo", model={"output": "rgb"}))
    with pytest.raises(ValueError, match="has no 'uv' output; it takes ab or ab_bins"):
        systems.resolve(get_config("demo", model={"output": "uv"}))
    network, output = systems.resolve(get_config("zhang-demo"))
    assert (network.name, output.name) == ("zhang", "ab_bins")  # the network's default
    not_ours = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="mine")
    with pytest.raises(systems.UnknownModel, match="a model named 'mine'"):
        systems.of_model(not_ours)


@pytest.mark.parametrize("layer", [
    layers.Fusion(7, name="f"), layers.PadToMultiple(16), layers.CropToFractionOf(4),
    layers.CropToHalfOf(), layers.VGGGrayInput(), layers.BilinearUpSampling(4)])
def test_custom_layer_configs_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_loss_configs_round_trip():
    centres = gamut_bins()
    for loss in (RebalancedSoftCrossEntropy(centres, np.linspace(0.5, 2, len(centres))),
                 HistogramKL("hue_chroma")):
        again = type(loss).from_config(loss.get_config())
        assert json.dumps(again.get_config(), sort_keys=True) == json.dumps(
            loss.get_config(), sort_keys=True)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_dict_round_trip(preset):
    cfg = get_config(preset, train={"epochs": 3}, model={"width": 0.5})
    again = from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg
    systems.resolve(again)  # every preset names a registered system


def test_uv_target_is_the_same_eagerly_and_inside_tf_data():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    lab8 = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    eager = read_input.uv_target(tf.constant(lab8), stride=2).numpy()
    ds = tf.data.Dataset.from_tensors(tf.constant(lab8)).map(lambda b: read_input.uv_target(b, 2))
    inside = next(iter(ds)).numpy()
    np.testing.assert_allclose(eager, inside, atol=1e-6)
    # and it is colorspace's conversion, area-averaged
    direct = colorspace.lab8_to_uv01(lab8).reshape(3, 8, 2, 8, 2, 2).mean((2, 4))
    np.testing.assert_allclose(eager, direct, atol=1e-5)


# ---------------------------------------------------------------- bench.py, each mode small


def test_bench_train_and_infer_take_any_system():
    peaks = {"float32": bench.bench_matmul("float32", n=256, repeats=2)["gflops"]}
    train = bench.bench_train("zhang-demo", ["float32"], 2, peaks, steps=2)
    assert train["rows"][0]["images_per_s"] > 0 and train["rows"][0]["mfu"] > 0
    for preset in ("zhang-demo", "varga-demo", "demo"):
        infer = bench.bench_infer(preset, "float32", peaks, batch_size=2, full_size=96,
                                  repeats=1)
        assert infer["images_per_s_224"] > 0 and infer["seconds_full"] > 0


def test_bench_measures_several_presets_in_one_run(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "bench_matmul", lambda dtype, **_: {
        "dtype": dtype, "n": 8, "gflops": 1.0, "gflops_median": 1.0, "repeats": 1})
    monkeypatch.setattr(bench, "bench_train", lambda preset, *_a, **_k: calls.append(
        ("train", preset)) or {"preset": preset})
    monkeypatch.setattr(bench, "bench_infer", lambda preset, *_a, **_k: calls.append(
        ("infer", preset)) or {"preset": preset})
    out = tmp_path / "b.json"
    proc = run_main(bench.main, ["--train", "--infer", "--preset", "paper,lite", "--out",
                                 str(out)])
    assert proc.returncode == 0, proc.stderr
    assert calls == [("train", "paper"), ("infer", "paper"), ("train", "lite"),
                     ("infer", "lite")]
    report = json.loads(out.read_text())
    assert report["train"] == {"preset": "paper"}  # the first, where one preset puts it
    assert report["presets"]["lite"]["infer"] == {"preset": "lite"}


def fake_matmul(measured):
    """bench_matmul giving the next of `measured` (GFLOP/s) at each call, the last for
    ever after."""
    def matmul(dtype, **_):
        g = measured.pop(0) if len(measured) > 1 else measured[0]
        return {"dtype": dtype, "n": 8, "gflops": g, "gflops_median": g, "repeats": 1}
    return matmul


@pytest.mark.parametrize("measured, remeasured, mfu", [
    ([100.0, 100.0], 0, 0.8),  # steady: before and after agree; 80 / 100
    ([50.0, 100.0], 0, 0.8),  # disturbed before, the after's peak is the best
    ([50.0, 50.0, 100.0], 1, 0.8),  # both low (MFU 1.6): measured again, once
    ([50.0], 2, None),  # low every time: no MFU above 100% is reported
])
def test_bench_never_reports_an_mfu_above_one(measured, remeasured, mfu, monkeypatch,
                                               capsys):
    monkeypatch.setattr(bench, "bench_matmul", fake_matmul(list(measured)))
    row = {"policy": "float32", "batch_norm": "fused", "batch_size": 2,
           "model_gflops_per_s": 80.0, "peak_dtype": "float32"}
    report = {"train": {"rows": [row]}}
    log = bench.PeakLog(["float32"])
    log.measure("before")
    log.measure("after")
    bench.settle_mfu(report, log)
    out = capsys.readouterr().out
    assert len(log.runs) == 2 + remeasured
    assert out.count("measuring the peak again") == remeasured
    assert row["mfu"] == (pytest.approx(mfu) if mfu else None)
    peak = report["matmul_peak"][0]
    assert len(peak["measurements"]) == 2 + remeasured
    best = max(m["gflops"] for m in peak["measurements"])
    worst = min(m["gflops"] for m in peak["measurements"])
    assert peak["gflops"] == best and peak["spread"] == pytest.approx((best - worst) / best)
    if mfu is None:
        assert "not trustworthy" in row["mfu_refused"] and "no MFU" in out
    else:
        assert f"{mfu:.0%} of the float32 matmul peak" in out
    assert not re.search(r"MFU[^\n]*\b(1[0-9]{2}|[2-9][0-9]{2})%", out.rsplit("measuring", 1)[-1])


def test_bench_input_build_and_transform_run_small(scenes_dataset):
    assert bench.bench_input(scenes_dataset, batch_size=8)["examples_per_s"] > 0
    build = bench.bench_build(count=16, repeats=1, whole_count=24)
    assert build["images_per_s_one_process"] > 0 and build["whole_build_images_per_s"] > 0
    transform = bench.bench_transform("demo", 128, 1, sizes=(0.05,))
    assert transform["rows"][0]["peak_rss_mb"] > 0


@pytest.mark.parametrize("args, says", [
    (["--infer", "--preset", "nope"], "unknown --preset 'nope'"),
    (["--infer", "--preset", "paper,nope"], "unknown --preset 'nope'"),
    (["--train", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--transform", "--repeats", "0"], "--repeats must be at least 1"),
    (["--transform", "--max-side", "-1"], "--max-side must be at least 0"),
    (["--train", "--policies", "float32,float99"], "unknown --policies float99"),
    (["--infer", "--out", "/nonexistent/dir/x.json"], "no folder /nonexistent/dir"),
    (["--infer", "--out", "."], "is a folder"),
])
def test_bench_usage_errors_are_one_line_before_any_work(args, says):
    # Before: a traceback (preset, policies, max side; --out only after every benchmark
    # had run) or silently accepted (a batch size or repeats of 0).
    proc = run_main(bench.main, args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert says in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert "CPU features" not in proc.stdout  # stopped before the first benchmark
