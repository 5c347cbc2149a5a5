"""bench.py --profile's breakdown (step_profile.py): each op of a traced training step
goes to the category of what it does, and a traced step of a small network adds up."""

import pytest

import step_profile

# Names as TensorFlow's trace of a `paper` step under mixed_bfloat16 gave them (oneDNN's
# kernels included), with the category a reader would give each.
NAMES = [
    ("iizuka2016_1/mid1_1/BiasAdd:_MklNativeFusedConv2D", "convolution forward", "mid1"),
    (("gradient_tape/iizuka2016_1/low6_1/convolution/Conv2DBackpropFilter:"
      "_MklNativeConv2DBackpropFilterWithBias"), "convolution gradient (filter)", "low6"),
    (("gradient_tape/iizuka2016_1/low2_1/convolution/Conv2DBackpropInput:"
      "_MklNativeConv2DBackpropInput"), "convolution gradient (input)", "low2"),
    ("iizuka2016_1/global_fc1_1/MatMul:_MklNativeFusedMatMul", "dense (matmul)", "global_fc1"),
    (("gradient_tape/iizuka2016_1/low1_bn_1/FusedBatchNormGradV3:"
      "_MklNativeFusedBatchNormGradV3"), "batch norm", "low1_bn"),
    ("adadelta/Sqrt_81:Rsqrt", "optimizer update", None),
    ("adadelta/ResourceApplyAdadelta_3:ResourceApplyAdadelta", "optimizer update", None),
    ("gradient_tape/iizuka2016_1/global_fc1_1/Cast/Cast/Cast:Cast", "cast float32/bfloat16",
     "global_fc1"),
    ("gradient_tape/iizuka2016_1/upsample2_1/Repeat_1/Sum:Sum", "upsampling", "upsample2"),
    ("gradient_tape/compile_loss/ab_mse/Mul_1:Mul", "loss", None),
    ("iizuka2016_1/color1_1/Relu:Relu", "element-wise", "color1"),
    ("iizuka2016_1/conv/_MklToTf:_MklToTf", "layout conversion", "conv"),
]


@pytest.mark.parametrize("name, category, layer", NAMES)
def test_each_traced_op_goes_to_its_category_and_layer(name, category, layer):
    assert step_profile.category(name) == category
    assert step_profile.layer_of(name, "iizuka2016") == layer


def test_the_breakdown_adds_up():
    ops = [(n, 0.01 * (i + 1)) for i, (n, _, _) in enumerate(NAMES)]
    result = step_profile.breakdown(ops, steps=2, model_name="iizuka2016")
    total = sum(s for _, s in ops)
    assert result["op_ms_per_step"] == pytest.approx(1e3 * total / 2)
    assert sum(c["share"] for c in result["categories"]) == pytest.approx(1.0)
    conv = next(c for c in result["categories"] if c["category"] == "convolution forward")
    assert conv["ms_per_step"] == pytest.approx(1e3 * 0.01 / 2)
    assert {r["layer"] for r in result["layers"]} == {"mid1", "low6", "low2", "global_fc1"}


def test_a_traced_step_of_a_small_network_is_mostly_its_convolutions():
    from config import get_config

    cfg = get_config("demo", model={"width": 0.125})
    result = step_profile.profile_training_step(cfg, "float32", 2, steps=1, warmup=1)
    shares = {c["category"]: c["share"] for c in result["categories"]}
    assert sum(shares.values()) == pytest.approx(1.0)
    conv = sum(v for k, v in shares.items() if k.startswith("convolution"))
    # Measured: 0.65 of the op time (other: 0.003, the ops no category takes).
    assert conv > 0.3 and shares.get("other", 0.0) < 0.1, shares
    assert result["wall_ms_per_step"] > 0 and result["layers"][0]["layer"] != "?"


def test_bench_profile_compares_the_two_adadelta_updates(monkeypatch):
    import bench
    from colorization import optimizers

    seen = []

    def fake(cfg, policy, _batch_size):
        seen.append((cfg.preset, policy, optimizers.FUSED))
        return {"wall_ms_per_step": 1.0, "op_ms_per_step": 2.0,
                "categories": [{"category": "other", "ms_per_step": 2.0, "share": 1.0}],
                "layers": []}

    monkeypatch.setattr(step_profile, "profile_training_step", fake)
    rows = bench.bench_profile("paper", ["mixed_bfloat16"], 4)["rows"]
    assert [r["optimizer_update"] for r in rows] == ["keras", "fused"]
    assert seen == [("paper", "mixed_bfloat16", False), ("paper", "mixed_bfloat16", True)]
    assert optimizers.FUSED  # set back
    rows = bench.bench_profile("zhang-demo", ["float32"], 4)["rows"]  # Adam: one row
    assert [r["optimizer_update"] for r in rows] == ["keras"]
