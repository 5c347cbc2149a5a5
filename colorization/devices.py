"""The machine: which GPUs the Keras backend sees, the dtype policy and the
tf.distribute strategy to train with. Used by model_train.py and bench.py."""

import json
import os


def configure_logical_cpus(n):
    """Splits the CPU into n logical devices (for trying multi-replica code on a laptop)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


# The CPU features that decide the matmul peak (bench.py names them beside every figure).
CPU_FEATURES = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def cpu_features():
    """The features of CPU_FEATURES that /proc/cpuinfo lists (empty where it is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    return [name for name in CPU_FEATURES if name in flags]


def cpu_supports_bf16():
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_features()))


def gpus():
    """[(name, (major, minor) compute capability)] of the GPUs the Keras backend sees.
    TensorFlow is asked under its backend; JAX under JAX's (bench.py runs there on
    machines that have no TensorFlow)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        found = []
        for d in jax.devices():
            if d.platform != "gpu":
                continue
            cc = tuple(int(v) for v in str(getattr(d, "compute_capability", "0.0")).split("."))
            found.append((d.device_kind, cc[:2]))
        return found
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", "GPU"),
                      tuple(details.get("compute_capability") or (0, 0))))
    return found


def choose_precision(requested="auto"):
    """(policy, reason) for --precision; 'auto' looks at the devices present."""
    if requested != "auto":
        return requested, "requested"
    found = gpus()
    if found:
        name, cc = found[0]
        # Where a GPU has both (compute capability 8.0+), bf16 needs no loss scaling
        # and trained this network faster than fp16: on an H100 (bench.py, JAX)
        # 2,417 vs 1,774 images/s at batch 32, 4,353 vs 3,908 at batch 128.
        if cc >= (8, 0):
            return "mixed_bfloat16", f"{name} (compute capability {cc[0]}.{cc[1]}) has fast bf16"
        if cc >= (7, 0):
            return "mixed_float16", f"{name} (compute capability {cc[0]}.{cc[1]}) has fast fp16"
        return "float32", f"{name} (compute capability {cc[0]}.{cc[1]}) has no fast fp16/bf16"
    if cpu_supports_bf16():
        return "mixed_bfloat16", "the CPU supports bfloat16 (avx512_bf16/amx_bf16)"
    return "float32", "no GPU and the CPU has no bfloat16 support"


def choose_strategy(logical_devices=0):
    """MultiWorkerMirrored when the process is one of several workers (TF_CONFIG, or
    a SLURM job step of several tasks), Mirrored over several local GPUs (or logical
    CPUs), else the default single-device strategy."""
    import tensorflow as tf

    if _tf_config_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy(), "multi-worker mirrored"
    if _slurm_tasks() > 1:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(os.environ.get("COLORIZATION_PORT_BASE", "15000")))
        return (tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver),
                "multi-worker mirrored (SLURM)")
    if logical_devices > 1:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:logical_devices]
        return tf.distribute.MirroredStrategy(devices), f"mirrored over {len(devices)} CPUs"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"mirrored over {len(gpus)} GPUs"
    return tf.distribute.get_strategy(), "one device"


def _tf_config():
    try:
        return json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    except ValueError:
        raise ValueError("TF_CONFIG is not valid JSON") from None


def _tf_config_workers():
    cluster = _tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _slurm_tasks():
    # srun sets SLURM_STEP_NUM_TASKS for each task of a job step; TF_CONFIG wins.
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) if "SLURM_PROCID" in \
        os.environ else 1


def multi_worker():
    """True when this process is one of several training workers."""
    return _tf_config_workers() > 1 or _slurm_tasks() > 1


def is_chief():
    """The worker that writes the run directory: TF_CONFIG's chief, else worker 0
    (SLURM: task 0); a single process is its own chief."""
    if _tf_config_workers() > 1:
        config = _tf_config()
        task = config.get("task", {})
        if config.get("cluster", {}).get("chief"):
            return task.get("type") == "chief"
        return int(task.get("index", 0)) == 0
    if _slurm_tasks() > 1:
        return int(os.environ.get("SLURM_PROCID", "0")) == 0
    return True
