"""The paper's optimizer, Adadelta, with its update in one kernel per variable.

Keras 3's Adadelta updates each variable in about ten separate element-wise passes
(squares, square roots, a division, three assignments). On a CPU that was 18% of the
op time of a `paper` training step at batch 8 (bench.py --profile): the global
network's first dense layer alone holds 25.7 million weights, and each pass reads
and writes all of them and both accumulators. On the TensorFlow backend, outside a
distribution strategy, FusedAdadelta runs TensorFlow's own ResourceApplyAdadelta,
the same arithmetic in one pass; elsewhere (JAX, PyTorch, MirroredStrategy and
multi-worker runs) it is Keras's Adadelta unchanged. tests/test_optimizers.py
checks that both paths give the same variables and accumulators.
"""

import keras

# Switch for measuring and testing the two paths in one process.
FUSED = True


@keras.saving.register_keras_serializable(package="colorization")
class FusedAdadelta(keras.optimizers.Adadelta):
    """keras.optimizers.Adadelta (the same variables, config and results) whose
    update runs as one fused kernel per variable on the TensorFlow backend."""

    def __init__(self, *args, name="adadelta", **kwargs):
        # The name keeps the optimizer variables' paths those of Keras's Adadelta.
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, grad, variable, learning_rate):
        if not _fused_applies(grad):
            return super().update_step(grad, variable, learning_rate)
        import tensorflow as tf

        index = self._get_variable_index(variable)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyAdadelta(
            var=_handle(variable), accum=_handle(self._accumulated_grads[index]),
            accum_update=_handle(self._accumulated_delta_vars[index]),
            lr=tf.cast(learning_rate, dtype), rho=tf.cast(self.rho, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(grad, dtype),
            use_locking=False)
        return None


def _fused_applies(grad):
    if not FUSED or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    # Under a strategy the variables are distributed ones, updated per replica by
    # Keras's own path; a sparse gradient has no dense fused kernel here.
    return not tf.distribute.has_strategy() and not isinstance(grad, tf.IndexedSlices)


def _handle(variable):
    """The resource handle of a Keras variable (its TensorFlow variable's)."""
    return variable.handle
