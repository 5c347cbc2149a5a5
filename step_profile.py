"""Where the time of one training step goes (bench.py --profile): TensorFlow's
profiler traces a few steps, and each executed op's time is summed by what it does.

The trace's ops are named `scope/.../name:OpType` (oneDNN's kernels as
`_MklNative...`); `category` sorts them into the groups issue 33 asks for:
convolutions (forward, and the two gradients), the dense layers, batch norm, the
element-wise work, the upsampling, the loss, the optimizer's update, casts between
float32 and bfloat16, and layout conversions between oneDNN's blocked formats and
NHWC. Times are op time summed over TensorFlow's compute threads, so the shares are
of the op time, which can exceed the wall time of a step when ops run side by side.
"""

import collections
import glob
import os
import re
import shutil
import tempfile
import time

CATEGORIES = ("convolution forward", "convolution gradient (filter)",
              "convolution gradient (input)", "dense (matmul)", "batch norm", "upsampling",
              "loss", "optimizer update", "cast float32/bfloat16", "layout conversion",
              "element-wise", "other")

# The name scopes of the compiled loss's ops.
_LOSS_SCOPES = ("compile_loss", "loss", "ab_loss", "scene_loss", "sparse_categorical")


_ELEMENTWISE = {"relu", "relugrad", "sigmoid", "sigmoidgrad", "add", "addv2", "mul", "sub",
                "realdiv", "square", "sqrt", "rsqrt", "neg", "maximum", "minimum", "biasadd",
                "biasaddgrad", "tile", "concatv2", "sum", "mean", "softmax", "exp", "log",
                "squareddifference", "addn", "reshape", "slice", "stridedslice",
                "broadcastto", "identity", "select", "selectv2", "pack", "fill"}


def category(name):
    """The category of one traced op, `scope/.../name:OpType`."""
    scope, _, op = name.rpartition(":")
    low = op.lower()
    parts = scope.split("/")
    if low.endswith("cast") or "castbf16" in low:
        return "cast float32/bfloat16"
    if "mkltotf" in low or "inputconversion" in low or low in ("transpose", "_mkltransform",
                                                              "datatypeconversion"):
        return "layout conversion"
    if parts[0].split("_")[0] in ("adadelta", "adam", "sgd", "rmsprop", "adamw") \
            or low.startswith(("resourceapply", "assignvariable", "assignaddvariable",
                               "assignsubvariable")):
        return "optimizer update"
    if "backpropfilter" in low:
        return "convolution gradient (filter)"
    if "backpropinput" in low:
        return "convolution gradient (input)"
    if "conv2d" in low or "depthwiseconv" in low:
        return "convolution forward"
    if "matmul" in low:
        return "dense (matmul)"
    if "batchnorm" in low:
        return "batch norm"
    if "resize" in low or "upsampl" in scope.lower():
        return "upsampling"
    if any(p.startswith(_LOSS_SCOPES) for p in parts):
        return "loss"
    if low in _ELEMENTWISE or low.startswith(("_mklnative", "_fused")):
        return "element-wise"
    return "other"


def layer_of(name, model_name):
    """The layer an op of the model belongs to: the scope after the model's
    (`iizuka2016_1/mid1_1/...` -> mid1); None for ops outside the model."""
    parts = name.rpartition(":")[0].split("/")
    for i, part in enumerate(parts[:-1]):
        if part == model_name or re.fullmatch(re.escape(model_name) + r"_\d+", part):
            return re.sub(r"_\d+$", "", parts[i + 1])
    return None


def traced_ops(logdir):
    """[(op name, seconds)] of every op event on TensorFlow's compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    ops = []
    for path in files:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" in name and not name.startswith(("ThreadpoolListener",
                                                            "ExecutorState", "Memory")):
                        ops.append((name, event.duration_ps / 1e12))
    return ops


def breakdown(ops, steps, model_name):
    """Per category and per layer (convolutions and dense layers, forward and both
    gradients), milliseconds per step and share of the op time."""
    by_cat, by_layer = collections.Counter(), collections.Counter()
    for name, seconds in ops:
        cat = category(name)
        by_cat[cat] += seconds
        if cat.startswith(("convolution", "dense")):
            by_layer[layer_of(name, model_name) or "?"] += seconds
    total = sum(by_cat.values()) or 1.0
    return {"op_ms_per_step": 1e3 * total / steps,
            "categories": [{"category": c, "ms_per_step": 1e3 * by_cat[c] / steps,
                            "share": by_cat[c] / total} for c in CATEGORIES if by_cat[c]],
            "layers": [{"layer": k, "ms_per_step": 1e3 * v / steps, "share": v / total}
                       for k, v in by_layer.most_common()]}


def profile_training_step(cfg, policy, batch_size, steps=3, warmup=3):
    """The paper preset's (or cfg's) training step, traced: wall seconds per step and
    the breakdown of its op time (random 224x224 batches, no input pipeline)."""
    import keras
    import tensorflow as tf

    import model_train

    model, x, y = model_train.benchmark_setup(cfg, policy, batch_size, warmup)
    logdir = tempfile.mkdtemp(prefix="step_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        result = breakdown(traced_ops(logdir), steps, model.name)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    keras.backend.clear_session()
    return {"policy": policy, "batch_size": batch_size, "steps": steps,
            "wall_ms_per_step": 1e3 * wall, **result}
