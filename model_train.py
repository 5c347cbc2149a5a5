"""Trains the colorization network; resumes a killed run from its run directory.

    python model_train.py --preset demo --data data/scenes --run-dir runs/demo
    python model_train.py --preset paper --data data/places --run-dir runs/places
    python model_train.py --preset paper --benchmark       # training images/s, no data needed

Loss: MSE on the half-resolution ab plus alpha x cross-entropy on the scene class
(alpha = 1/300; 0 when the dataset has no labels). ADADELTA as in the paper, or
--optimizer adam. A classification head (--preset zhang / zhang-demo, or
--head classification on the Iizuka network) is trained with Zhang et al.'s
soft-encoded cross-entropy over the ab bins, rebalanced by the colour prior in
the dataset's dataset.json (ab_bins.py); Larsson et al.'s histograms (--preset
larsson, larsson-demo) by KL divergence (histograms.py); Varga & Szirányi's U, V
(--preset varga, varga-demo) by cross-entropy. On a fresh run of the VGG-16
presets the backbone's weights are loaded first (--vgg-weights; ImageNet by
default). The run directory holds everything about the run:

    config.json        the resolved configuration
    model.keras        the model after the last finished epoch; best.keras: best val_loss
    log.csv, logs/     per-epoch losses (CSV, TensorBoard)
    samples/           validation images colorized each epoch: gray | model | truth
    plots/             learning curves (redrawn every epoch)
    state/             the resumable state: weights + optimizer, epoch and step

Started again with the same --run-dir, training continues from the last saved
step; a finished run says so and exits 0. Several GPUs are used through
MirroredStrategy; several machines through MultiWorkerMirroredStrategy when
TF_CONFIG names more than one worker (see the README). --batch-size is the global
batch, divided across the replicas.

Exit status: 0 trained (or already finished), 1 the loss became NaN (the last
good checkpoint is kept), 2 usage error (e.g. no dataset: run input_create.py).
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _configure_logical_cpus(n):
    """Splits the CPU into n logical devices (for trying multi-replica code on a laptop)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def cpu_supports_bf16():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
    """MultiWorkerMirrored if TF_CONFIG lists several workers, Mirrored over several
    local GPUs (or logical CPUs), else the default single-device strategy."""
    import tensorflow as tf

    if _multi_worker():
        return tf.distribute.MultiWorkerMirroredStrategy(), "multi-worker mirrored"
    if logical_devices > 1:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:logical_devices]
        return tf.distribute.MirroredStrategy(devices), f"mirrored over {len(devices)} CPUs"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"mirrored over {len(gpus)} GPUs"
    return tf.distribute.get_strategy(), "one device"


def learning_rate(cfg, steps_per_epoch=None):
    """The configured rate, or a staircase schedule halving (lr_decay_factor) it every
    lr_decay_epochs epochs (a serializable Keras schedule, so it resumes)."""
    import keras

    if not cfg.train.lr_decay_epochs or not steps_per_epoch:
        return cfg.train.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(
        cfg.train.learning_rate, decay_steps=max(1, round(cfg.train.lr_decay_epochs
                                                          * steps_per_epoch)),
        decay_rate=cfg.train.lr_decay_factor, staircase=True)


def make_optimizer(cfg, steps_per_epoch=None):
    import keras

    if cfg.train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate(cfg, steps_per_epoch),
                                    momentum=cfg.train.momentum,
                                    weight_decay=cfg.train.weight_decay or None)
    if cfg.train.optimizer == "adadelta":
        return keras.optimizers.Adadelta(learning_rate=cfg.train.learning_rate, rho=0.95,
                                         epsilon=1e-6)
    if cfg.train.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.train.learning_rate,
                                     beta_2=cfg.train.beta_2,
                                     weight_decay=cfg.train.weight_decay or None)
    raise ValueError(f"unknown optimizer {cfg.train.optimizer!r} (adadelta, adam or sgd)")


def compile_model(model, cfg, with_labels, rebalancing=None, steps_per_epoch=None):
    """Compiles with the head's loss; rebalancing: the (Q,) class weights of a
    classification head (None: unweighted)."""
    import keras

    from colorization import histograms

    mode = histograms.output_mode(model.output)
    if mode:  # Larsson et al.: KL divergence of the per-pixel histograms
        key = histograms.MODES[mode]
        losses, weights = {key: histograms.HistogramKL(mode)}, {key: 1.0}
    elif "uv" in model.output:
        # Varga & Szirányi's cross-entropy between the target and predicted U, V in
        # [0, 1]. The seed writes it as -sum UV log UV_p, which alone is smallest at
        # UV_p = 1 whatever the target; with the (1 - UV) log(1 - UV_p) term it is
        # the binary cross-entropy, smallest at UV_p = UV.
        losses = {"uv": keras.losses.BinaryCrossentropy(name="uv_xent")}
        weights = {"uv": 1.0}
    elif "ab_bins" in model.output:
        from colorization.ab_bins import RebalancedSoftCrossEntropy, gamut_bins

        losses = {"ab_bins": RebalancedSoftCrossEntropy(gamut_bins(), rebalancing)}
        weights = {"ab_bins": 1.0}
    else:
        losses = {"ab": keras.losses.MeanSquaredError(name="ab_mse")}
        weights = {"ab": 1.0}
    if with_labels:
        losses["scene"] = keras.losses.SparseCategoricalCrossentropy(name="scene_xent")
        weights["scene"] = cfg.train.class_loss_weight
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=losses,
                  loss_weights=weights)
    return model


class TrainingError(Exception):
    """Training stopped for a reason the user must act on (e.g. a NaN loss)."""


class RunInUse(Exception):
    """Another process is training the same run directory."""


def _multi_worker():
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return len(tf_config.get("cluster", {}).get("worker", [])) > 1


def lock_run_dir(run_dir):
    """An exclusive lock on run_dir/.lock held until the process exits (or the
    returned file is closed), or RunInUse. Two processes resuming the same run
    would otherwise both train it and overwrite each other's checkpoints. The
    workers of a multi-worker run share the directory on purpose and skip this."""
    import fcntl

    if _multi_worker():
        return None
    f = open(os.path.join(run_dir, ".lock"), "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise RunInUse(f"{run_dir} is being trained by {holder}; wait for it to finish or "
                       "stop it (it resumes from where it stopped)") from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()}")
    f.flush()
    return f


def train(cfg, data_dir, run_dir, logical_devices=0, progress=True, sample_count=4,
          save_every_steps=None):
    """Trains (or resumes) a run; returns a dict describing the finished run."""
    import keras

    import build_model
    import read_input
    from colorization.atomic_io import write_json_atomic
    from colorization.callbacks import (
        Checkpointing,
        LearningCurves,
        NanGuard,
        ProgressBar,
        SamplePictures,
        TrainingState,
        plot_learning_curves,
    )
    from config import to_dict

    summary = read_input.load_summary(data_dir)
    os.makedirs(run_dir, exist_ok=True)
    lock = lock_run_dir(run_dir)  # noqa: F841 (held while this function runs)
    state = TrainingState(run_dir).load()
    if state and state.get("finished"):
        return {"status": "already finished", "run_dir": run_dir, **state}

    # Only Iizuka et al.'s network has a scene head.
    with_labels = summary["num_classes"] > 0 and cfg.model.arch == "iizuka"
    cfg.model.num_classes = summary["num_classes"] if with_labels else 0
    if not with_labels:
        cfg.train.class_loss_weight = 0.0
    policy, why = choose_precision(cfg.train.precision)
    cfg.train.precision = policy
    write_json_atomic(os.path.join(run_dir, "config.json"),
                      {**to_dict(cfg), "data": {**to_dict(cfg)["data"], "path": data_dir},
                       "class_names": summary.get("class_names") or []})
    keras.utils.set_random_seed(cfg.train.seed)
    build_model.set_precision(policy)
    strategy, how = choose_strategy(logical_devices)
    print(f"precision {policy}: {why}; distribution: {how} "
          f"({strategy.num_replicas_in_sync} replica(s))", flush=True)

    batch = cfg.train.batch_size
    n_train = summary["splits"]["train"]["count"]
    steps = cfg.train.steps_per_epoch or max(1, n_train // batch)
    target = {"ab_stride": build_model.output_stride(cfg), "ab_key": build_model.colour_key(cfg),
              "with_labels": with_labels}
    train_ds = read_input.make_dataset(data_dir, "train", batch, training=True,
                                       crop_size=cfg.data.crop_size,
                                       shuffle_buffer=cfg.data.shuffle_buffer, seed=cfg.train.seed,
                                       **target)
    val_ds = read_input.make_dataset(data_dir, "val", batch, training=False,
                                     crop_size=cfg.data.crop_size, **target)
    rebalancing = None
    if target["ab_key"] == "ab_bins":
        from colorization import ab_bins

        rebalancing = ab_bins.weights_from_histogram(*ab_bins.summary_histogram(summary),
                                                     ab_bins.gamut_bins())
    with strategy.scope():
        model = compile_model(build_model.build_model(cfg), cfg, with_labels, rebalancing,
                              steps)
        state = TrainingState(run_dir).restore(model)
        if not state and cfg.model.arch in ("larsson", "varga"):
            from colorization import hypercolumn as hypercolumn_model

            hypercolumn_model.load_backbone_weights(model, cfg.model.backbone_weights)
    epoch0 = state["epoch"] if state else 0
    step0 = state["step_in_epoch"] if state else 0
    best = state.get("best_val_loss", math.inf) if state else math.inf
    if state:
        print(f"resuming {run_dir} at epoch {epoch0 + 1}, step {step0} of {steps} "
              f"(global step {state['global_step']})", flush=True)

    samples = next(iter(read_input.make_dataset(data_dir, "val", sample_count, training=False,
                                                **target)))
    csv_path = os.path.join(run_dir, "log.csv")
    os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
    curves = os.path.join(run_dir, "plots", "learning_curves.png")
    every = save_every_steps if save_every_steps is not None else max(1, min(steps // 4, 500))
    checkpointing = Checkpointing(run_dir, steps, every, start_step=step0, best=best)
    nan_guard = NanGuard()
    bar = ProgressBar(steps, batch, cfg.train.epochs, start_step=step0, enabled=progress)
    # SamplePictures adds its metrics to the epoch's logs, so it runs before the loggers.
    callbacks = [nan_guard,
                 SamplePictures(run_dir, samples[0].numpy(), samples[1][target["ab_key"]].numpy(),
                                cfg.inference.temperature, key=target["ab_key"]),
                 checkpointing, bar,
                 keras.callbacks.CSVLogger(csv_path, append=True),
                 keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), write_graph=False),
                 LearningCurves(csv_path, curves)]

    start = time.perf_counter()
    phases = []
    if step0 > 0 and epoch0 < cfg.train.epochs:  # finish the interrupted epoch first
        phases.append((epoch0, epoch0 + 1, steps - step0))
        epoch0 += 1
    if epoch0 < cfg.train.epochs:
        phases.append((epoch0, cfg.train.epochs, steps))
    for initial, end, n_steps in phases:
        model.fit(train_ds, epochs=end, initial_epoch=initial, steps_per_epoch=n_steps,
                  validation_data=val_ds, callbacks=callbacks, verbose=0)
        if nan_guard.where:
            epoch, step = nan_guard.where
            last = TrainingState(run_dir).load()
            kept = (f"the last good state is from epoch {last['epoch']}, step "
                    f"{last['step_in_epoch']} ({os.path.join(run_dir, 'state')})"
                    if last else "no good state had been saved yet")
            raise TrainingError(f"the loss became NaN at epoch {epoch}, step {step}; "
                                f"training stopped and {kept}. Try a lower --learning-rate "
                                "or --precision float32.")
    elapsed = time.perf_counter() - start
    final = TrainingState(run_dir).load() or {}
    write_json_atomic(TrainingState(run_dir).path, {**final, "finished": True})
    plot_learning_curves(csv_path, curves) if os.path.exists(csv_path) else None
    return {"status": "trained", "run_dir": run_dir, "seconds": elapsed,
            "model": os.path.join(run_dir, "model.keras"),
            "best": os.path.join(run_dir, "best.keras"), "plots": curves,
            "samples": os.path.join(run_dir, "samples"), "steps_per_epoch": steps,
            "global_step": final.get("global_step")}


def benchmark_training(cfg, policy, batch_size, steps=8, warmup=3):
    """Median training images/s on random 224x224 batches (no input pipeline)."""
    import keras
    import numpy as np

    import build_model

    build_model.set_precision(policy)
    cfg.train.precision = policy
    model = compile_model(build_model.build_model(cfg), cfg, cfg.model.num_classes > 0)
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 224, 224, 1), np.float32)
    side = 224 // build_model.output_stride(cfg)
    y = {build_model.colour_key(cfg): rng.random((batch_size, side, side, 2), np.float32)}
    if cfg.model.num_classes:
        y["scene"] = rng.integers(0, cfg.model.num_classes, batch_size).astype("int32")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    keras.backend.clear_session()
    return batch_size / float(np.median(times)), times


def parse_args(argv):
    from config import PRESETS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--data", default="data/scenes", help="dataset folder (input_create.py)")
    p.add_argument("--run-dir", help="run directory (default runs/PRESET)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--steps-per-epoch", type=int, help="default: one pass over the train split")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--optimizer", choices=["adadelta", "adam", "sgd"])
    p.add_argument("--head", choices=["regression", "classification"],
                   help="ab output of the Iizuka network: regression (MSE, the paper's) or "
                        "Zhang et al.'s classification over ab bins")
    p.add_argument("--histogram", choices=["lab", "hue_chroma"],
                   help="Larsson et al.'s output (--preset larsson / larsson-demo): Lab "
                        "marginals or hue/chroma (the preset's default)")
    p.add_argument("--vgg-weights", metavar="FILE|imagenet|none",
                   help="VGG-16 weights of the larsson / varga presets: imagenet (download), "
                        "a local file of the convolutional weights, or none (random)")
    p.add_argument("--precision", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"])
    p.add_argument("--seed", type=int)
    p.add_argument("--logical-cpus", type=int, default=0,
                   help="split the CPU into N devices and mirror over them (for testing)")
    p.add_argument("--save-every", type=int, help="steps between resumable saves")
    p.add_argument("--benchmark", action="store_true",
                   help="measure training images/s under float32 and the auto policy")
    return p.parse_args(argv)


def resolve_config(args):
    from config import from_dict, get_config

    run_dir = args.run_dir or os.path.join("runs", args.preset)
    saved = os.path.join(run_dir, "config.json")
    if os.path.exists(saved) and not args.benchmark:
        with open(saved, encoding="utf-8") as f:
            d = json.load(f)
        d["data"].pop("path", None)
        d.pop("class_names", None)  # read from the dataset, kept for model_transform.py
        cfg = from_dict(d)  # a resumed run keeps its own settings; --epochs may extend it
        if args.epochs:
            cfg.train.epochs = args.epochs
        return cfg, run_dir
    train = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size,
                               "steps_per_epoch": args.steps_per_epoch,
                               "learning_rate": args.learning_rate, "optimizer": args.optimizer,
                               "precision": args.precision, "seed": args.seed}.items()
             if v is not None}
    model = {k: v for k, v in {"head": args.head, "histogram": args.histogram,
                               "backbone_weights": args.vgg_weights}.items() if v is not None}
    return get_config(args.preset, train=train, model=model), run_dir


def build_model_checks(cfg):
    """Raises ValueError for a config no network can be built from."""
    import build_model

    build_model.check_arch(cfg)
    build_model.num_bins_for(cfg)
    if cfg.model.arch in ("larsson", "varga"):
        from colorization import hypercolumn as hypercolumn_model

        hypercolumn_model.check_weights(cfg.model.backbone_weights, cfg.model.width == 1.0)


def main(argv=None):
    args = parse_args(argv)
    if args.logical_cpus > 1:
        _configure_logical_cpus(args.logical_cpus)
    cfg, run_dir = resolve_config(args)
    try:
        build_model_checks(cfg)
    except ValueError as e:
        print(f"model_train.py: error: {e}", file=sys.stderr)
        return 2
    if args.benchmark:
        batch = args.batch_size or 16
        auto, why = choose_precision("auto")
        for policy in dict.fromkeys(["float32", auto]):
            rate, _ = benchmark_training(cfg, policy, batch)
            print(f"{cfg.preset} preset, {policy}: {rate:.2f} training images/s "
                  f"(batch {batch}, median of 8 steps){' - auto: ' + why if policy == auto else ''}",
                  flush=True)
        return 0
    import read_input
    from colorization.hypercolumn import WeightsError

    try:
        result = train(cfg, args.data, run_dir, logical_devices=args.logical_cpus,
                       progress=sys.stderr.isatty(), save_every_steps=args.save_every)
    except read_input.DatasetError as e:
        print(f"model_train.py: error: {e}", file=sys.stderr)
        return 2
    except WeightsError as e:  # a VGG-16 weights file that does not load
        print(f"model_train.py: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"model_train.py: {e}", file=sys.stderr)
        return 1
    except RunInUse as e:
        print(f"model_train.py: error: {e}", file=sys.stderr)
        return 2
    if result["status"] == "already finished":
        print(f"{run_dir} has already finished training (epoch {result.get('epoch')}); "
              f"its model is {os.path.join(run_dir, 'model.keras')}")
        return 0
    print(f"trained in {result['seconds'] / 60:.1f} min: model {result['model']} "
          f"(best on validation: {result['best']}); learning curves {result['plots']}; "
          f"sample colorizations in {result['samples']}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
