"""The fused batch-norm layer against Keras's own BatchNormalization: outputs,
gradients, moving statistics, in float32 and both mixed policies, in training and
inference; its fallback under the JAX backend; and that networks use it."""

import importlib.machinery
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Largest difference allowed, relative to the largest magnitude of the compared
# value. Measured: float32 <= 3e-7; mixed_bfloat16 <= 5e-4 (the gradient of the
# input; the outputs are equal after rounding to bfloat16, whose step is 2^-8 of
# the value); mixed_float16 <= 8e-5 (the inference output, one float16 step).
TOLERANCE = {"float32": 1e-5, "mixed_bfloat16": 8e-3, "mixed_float16": 2e-3}


def run_both(policy, shape, calls):
    """[keras values, fused values] after two training steps on the same input:
    output, gradients of a loss for the input, gamma and beta, the moving mean and
    variance, and the inference output. `calls` counts the fused kernel's calls."""
    import keras
    import tensorflow as tf

    from colorization.layers import BatchNormalization as FusedBN

    rng = np.random.default_rng(0)
    x = tf.constant((rng.normal(size=shape) * 3 + 1).astype(np.float32))
    gamma = rng.normal(size=shape[-1]).astype(np.float32)
    beta = rng.normal(size=shape[-1]).astype(np.float32)
    weights = tf.constant(rng.normal(size=shape).astype(np.float32))
    results = []
    for cls in (keras.layers.BatchNormalization, FusedBN):
        layer = cls(momentum=0.9, dtype=keras.DTypePolicy(policy))
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        before = calls["n"]
        for _ in range(2):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(x, training=True), tf.float32)
                loss = tf.reduce_sum(y * weights + 0.5 * y ** 2)
            grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
        inference = layer(x, training=False)
        assert str(y.dtype.name) == "float32" and inference.dtype.name == (
            {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(policy, "float32"))
        results.append([np.asarray(tf.cast(v, tf.float32)) for v in
                        (y, *grads, layer.moving_mean.value, layer.moving_variance.value,
                         inference)])
        fused_calls = calls["n"] - before
    assert fused_calls == 3, "the fused kernel did not run (two steps and one inference)"
    return results


@pytest.fixture
def counted_kernel(monkeypatch):
    import tensorflow as tf

    calls = {"n": 0}
    kernel = tf.compat.v1.nn.fused_batch_norm

    def counting(*args, **kwargs):
        calls["n"] += 1
        return kernel(*args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", counting)
    return calls


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("shape", [(4, 9, 7, 5), (6, 5)])
def test_fused_equals_keras(policy, shape, counted_kernel):
    keras_values, fused_values = run_both(policy, shape, counted_kernel)
    names = ["output", "grad input", "grad gamma", "grad beta", "moving mean",
             "moving variance", "inference output"]
    for name, ref, got in zip(names, keras_values, fused_values, strict=True):
        scale = max(float(np.max(np.abs(ref))), 1e-6)
        worst = float(np.max(np.abs(ref - got))) / scale
        assert worst <= TOLERANCE[policy], f"{policy} {shape} {name}: {worst:.2e} relative"
    # The moving statistics moved from (0, 1): the update itself was compared.
    assert np.max(np.abs(fused_values[4])) > 0.01


def test_networks_use_it_and_it_saves(tmp_path):
    import keras

    import build_model
    from colorization.layers import BatchNormalization as FusedBN
    from config import get_config

    build_model.set_precision("float32")
    model = build_model.build_model(get_config("demo"))
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBN) for layer in norms)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    x = np.random.default_rng(1).random((1, 224, 224, 1), np.float32)
    assert type(loaded.get_layer(norms[0].name)) is FusedBN
    for got, want in zip(keras.tree.flatten(loaded(x)), keras.tree.flatten(model(x)),
                         strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


JAX_CHECK = textwrap.dedent("""
    import keras, numpy as np
    assert keras.backend.backend() == "jax"
    from colorization.layers import BatchNormalization as FusedBN
    x = np.random.default_rng(0).normal(size=(4, 9, 7, 5)).astype("float32") * 3 + 1
    out = []
    for cls in (keras.layers.BatchNormalization, FusedBN):
        layer = cls(momentum=0.9)
        y = layer(x, training=True)
        out.append((np.asarray(y), np.asarray(layer.moving_mean.value),
                    np.asarray(layer(x, training=False))))
    for a, b in zip(*out):
        assert np.array_equal(a, b), float(np.max(np.abs(a - b)))
    print("jax fallback equal")
""")


def test_jax_backend_falls_back_to_keras():
    # requirements-dev.txt installs JAX and CI runs this. Looked up on the path, not
    # imported: conftest hides JAX from the test processes (it runs in a subprocess).
    if importlib.machinery.PathFinder.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_CHECK], check=False, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "jax fallback equal" in done.stdout
