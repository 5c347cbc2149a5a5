"""FusedAdadelta (optimizers.py): TensorFlow's fused kernel gives what Keras's
Adadelta gives, under every policy; a compiled model's file names it and loads in
safe mode; under a distribution strategy it is Keras's path."""

import keras
import numpy as np
import pytest

import build_model
from colorization import layers, optimizers  # layers: the registrations


def small_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, dtype="float32")(x)
    return keras.Model(inputs, x)


def train(fused, policy, steps=6, scope=None):
    """(weights, optimizer variables) after `steps` steps of the paper's Adadelta."""
    optimizers.FUSED = fused
    build_model.set_precision(policy)
    try:
        with scope or _nothing():
            model = small_model(0)
            model.compile(optimizer=optimizers.FusedAdadelta(learning_rate=1.0, rho=0.95,
                                                             epsilon=1e-6), loss="mse")
            rng = np.random.default_rng(1)
            x = rng.random((8, 16, 16, 1), np.float32)
            y = rng.random((8, 5), np.float32)
            for _ in range(steps):
                model.train_on_batch(x, y)
        to_np = keras.ops.convert_to_numpy
        return ([to_np(w) for w in model.weights],
                [to_np(v) for v in model.optimizer.variables])
    finally:
        optimizers.FUSED = True
        build_model.set_precision("float32")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# Measured largest differences (weights of about 1): float32 3.6e-6 after 6 steps; 3e-8
# after one step under every policy, 1.1e-5 (bf16) and 4.2e-6 (float16) after two. Later
# steps of a mixed policy round the activations of slightly different weights
# differently (2e-3 after 6 steps), which is the policy's rounding, not the update's.
@pytest.mark.parametrize("policy, steps, atol", [("float32", 6, 2e-5),
                                                 ("mixed_bfloat16", 2, 5e-5),
                                                 ("mixed_float16", 2, 5e-5)])
def test_the_fused_update_equals_keras_adadelta(policy, steps, atol):
    (w_fused, o_fused), (w_keras, o_keras) = train(True, policy, steps), \
        train(False, policy, steps)
    assert len(o_fused) == len(o_keras) > 2  # iterations, the two accumulators per weight
    for a, b in zip(w_fused + o_fused, w_keras + o_keras, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    # It trained: the weights moved from the seed's.
    start = [keras.ops.convert_to_numpy(w) for w in small_model(0).weights]
    assert max(np.abs(a - b).max() for a, b in zip(w_fused, start, strict=True)) > 1e-3


def test_the_fused_kernel_runs_and_a_strategy_takes_keras_path(monkeypatch):
    import tensorflow as tf

    calls = []
    original = tf.raw_ops.ResourceApplyAdadelta
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdadelta",
                        lambda **kw: calls.append(1) or original(**kw))
    train(True, "float32", steps=1)
    assert calls  # traced once per variable
    calls.clear()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    (w_strategy, _), (w_plain, _) = train(True, "float32", scope=strategy.scope()), \
        train(False, "float32")
    assert not calls
    for a, b in zip(w_strategy, w_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_a_compiled_model_with_it_loads_in_safe_mode(tmp_path):
    model = small_model(0)
    model.compile(optimizer=optimizers.FusedAdadelta(learning_rate=0.5, rho=0.9), loss="mse")
    model.train_on_batch(np.zeros((2, 16, 16, 1), np.float32), np.zeros((2, 5), np.float32))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.optimizer) is optimizers.FusedAdadelta
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    # The variables keep Keras's Adadelta's paths (a run's saved state stays readable).
    assert all(v.path.startswith("adadelta/") for v in loaded.optimizer.variables)


def test_a_paper_optimizer_run_trains_saves_and_resumes_its_state(scenes_dataset, tmp_path):
    """The trainer gives the paper's optimizer as FusedAdadelta; a run's saved state
    restores into a fresh model with its step count and both accumulators."""
    import model_train
    from colorization.callbacks import TrainingState
    from config import get_config

    cfg = get_config("demo", model={"width": 0.0625}, train={
        "optimizer": "adadelta", "learning_rate": 1.0, "batch_size": 4, "epochs": 1,
        "steps_per_epoch": 3, "precision": "float32", "seed": 0})
    run = str(tmp_path / "run")
    result = model_train.train(cfg, scenes_dataset, run, progress=False)
    saved = keras.saving.load_model(result["model"], safe_mode=True)
    assert type(saved.optimizer) is optimizers.FusedAdadelta
    fresh = model_train.compile_model(build_model.build_model(model_train.load_run_config(run)),
                                      model_train.load_run_config(run), True)
    assert type(fresh.optimizer) is optimizers.FusedAdadelta
    state = TrainingState(run).restore(fresh)
    assert state["global_step"] == 3 and int(fresh.optimizer.iterations.numpy()) == 3
    accumulators = [v for v in fresh.optimizer.variables if "accumulated" in v.path]
    assert accumulators and all(np.any(keras.ops.convert_to_numpy(v)) for v in accumulators)
