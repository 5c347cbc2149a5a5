"""What every registered system promises once trained, on its one shared trained run
(conftest.TRAININGS, the `trained` fixture): a short training lowers its own loss
on held-out photos; the saved model loads in safe mode and colorizes any size as the
training model does; model_transform.py and evaluate.py take it with no flags that
name the system. The system-specific checks stay in each system's module."""

import csv
import os
import warnings

import keras
import matplotlib.cbook
import numpy as np
import pytest
from conftest import TRAININGS, colorized_chroma, run_transform, training_config

import evaluate
import model_train
import read_input
from colorization import inference, systems

PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)

# The loss on the val split after the shared training, as a fraction of the untrained
# model's: a bound about halfway between 1 and the measured ratio (in the comments,
# float32 on 2 cores, issue 35's note).
LOSS_RATIO = {
    "demo": 0.6,  # the ab MSE: measured 0.0107 -> 0.0025
    "zhang-demo": 0.8,  # the rebalanced soft cross-entropy: 4.82 -> 2.91
    "larsson-demo": 0.8,  # the hue/chroma KL: 8.25 -> 4.55
    "varga-demo": 0.9,  # the U, V cross-entropy above its floor: 0.0310 -> 0.0230
    "lite": 0.87,  # the soft cross-entropy: 4.77 -> 3.53
    "lite-hypercolumn": 0.7,  # the hue/chroma KL: 8.25 -> 3.13
}
# evaluate.py's AuC (%) above gray's (ab = 0) on the val split after the training.
AUC_ABOVE_GRAY = {
    "demo": 3.0,  # measured: gray 75.7 (its own data, sky_scenes), Iizuka 90.7
    "zhang-demo": 3.0,  # measured: gray 74.9, Zhang 84.4
    "larsson-demo": 1.0,  # 82.3
    "varga-demo": 1.0,  # 79.4
    "lite": 1.0,  # 78.3
    "lite-hypercolumn": 3.0,  # 91.8
}


def test_every_registered_network_has_a_shared_training():
    trained_networks = {systems.resolve(training_config(p))[0].name for p in TRAININGS}
    assert trained_networks == set(systems.NETWORKS)
    assert set(LOSS_RATIO) == set(AUC_ABOVE_GRAY) == set(TRAININGS)


def val_loss(model_path, trained):
    """The system's own training loss (weighted by the training set's colour prior where
    the space uses one) on the val split; for the U, V cross-entropy less the targets'
    own entropy (the loss of a perfect prediction; what is left is about 2 x the
    squared error)."""
    model = keras.saving.load_model(model_path, safe_mode=True)
    model_train.compile_model(model, trained.cfg, with_labels=False,
                              summary=read_input.load_summary(trained.data))
    network, output = systems.of_model(model)
    ds = read_input.make_dataset(trained.data, "val", 16, training=False, with_labels=False,
                                 ab_stride=network.output_stride, ab_key=output.name,
                                 target=output.target)
    with warnings.catch_warnings():  # a finite split ends: Keras says its input ran out
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        loss = float(np.ravel(model.evaluate(ds, verbose=0))[0])
    if output.name == "uv":
        xent = keras.losses.BinaryCrossentropy()
        floor = [(float(keras.ops.convert_to_numpy(xent(y["uv"], y["uv"]))), len(x))
                 for x, y in ds]
        loss -= sum(f * n for f, n in floor) / sum(n for _, n in floor)
    return loss


def test_a_short_training_lowers_the_systems_own_loss(trained):
    before, after = val_loss(trained.untrained, trained), val_loss(trained.model, trained)
    print(f"{trained.preset}: val loss {before:.4f} -> {after:.4f}")
    assert after < LOSS_RATIO[trained.preset] * before, (trained.preset, before, after)
    with open(os.path.join(trained.run, "log.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    epochs = trained.cfg.train.epochs
    assert len(rows) == epochs and 0 < float(rows[-1]["sample_auc"]) <= 100
    assert os.path.exists(os.path.join(trained.run, "samples", f"epoch-{epochs:03d}.png"))


def test_the_saved_model_loads_in_safe_mode_and_colorizes_any_size(trained):
    model = inference.load_model(trained.model)
    network, _ = systems.of_model(model)
    assert network.name == trained.cfg.model.network
    stride = network.output_stride
    colorizer = inference.Colorizer(model)
    x = np.random.default_rng(0).random((2, 224, 224, 1)).astype(np.float32)
    ab, probs = colorizer.predict(x)
    assert ab.shape == (2, 224 // stride, 224 // stride, 2)
    # The scene head (trained where the data has labels) gives the scene's probabilities.
    assert (probs is None) == ("scene" not in model.output)
    if probs is not None:
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    direct = systems.decoded_ab01(model(x, training=False), gray=x)
    np.testing.assert_allclose(ab, direct, atol=1e-4)  # any-size wiring = training model
    for h, w in [(37, 101), (300, 200)]:
        ab, _ = colorizer.predict(np.random.rand(1, h, w, 1).astype(np.float32))
        assert ab.shape == (1, -(-h // stride), -(-w // stride), 2)
        assert np.all((ab >= 0) & (ab <= 1))
    if not network.has_global_features:
        with pytest.raises(inference.ModelError, match="no global features"):
            inference.Colorizer(model, with_reference=True)


def test_transform_and_evaluate_take_the_model_with_no_extra_flags(trained, tmp_path):
    network = systems.resolve(trained.cfg)[0]
    out = str(tmp_path / "hopper_color.png")
    proc = run_transform(PHOTO, "--model", trained.model, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert colorized_chroma(PHOTO, out) > 2.0, trained.preset  # coloured
    ref = run_transform(PHOTO, "--model", trained.model, "--reference", PHOTO, "--out",
                        str(tmp_path / "ref.png"))
    if network.has_global_features:
        assert ref.returncode == 0, ref.stderr
    else:
        assert ref.returncode == 2 and "Traceback" not in ref.stderr
        line = ref.stderr.splitlines()[-1]
        assert "needs a model with global features" in line and network.title in line, line

    results, _ = evaluate.evaluate(trained.data, [trained.model], str(tmp_path / "report"),
                                   ablate_global=True)
    names = [n for n in results if n.endswith("model.keras")]
    assert len(names) == 1
    # The ablation row exists where there are global features to ablate.
    assert len(results) == 3 + network.has_global_features, sorted(results)
    gray = results["gray (ab = 0)"]["auc"]
    print(f"{trained.preset}: AuC gray {gray:.1f}, model {results[names[0]]['auc']:.1f}")
    assert results[names[0]]["auc"] > gray + AUC_ABOVE_GRAY[trained.preset]
