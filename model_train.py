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
step with the run's own settings (--epochs may lengthen or shorten it, even once
finished; a flag that would change anything else is refused, naming it); a
finished run says so and exits 0. Several GPUs are used through
MirroredStrategy; several machines through MultiWorkerMirroredStrategy when
TF_CONFIG names more than one worker (see the README). --batch-size is the global
batch, divided across the replicas.

Exit status: 0 trained (or already finished), 1 the loss became NaN (the last
good checkpoint is kept), 2 usage error (e.g. no dataset: run input_create.py).
"""

import argparse
import copy
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

from colorization.devices import (
    choose_precision,
    choose_strategy,
    configure_logical_cpus,
    is_chief,
    multi_worker,
)


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
        from colorization.optimizers import FusedAdadelta

        return FusedAdadelta(learning_rate=cfg.train.learning_rate, rho=0.95, epsilon=1e-6)
    if cfg.train.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate(cfg, steps_per_epoch),
                                     beta_2=cfg.train.beta_2,
                                     weight_decay=cfg.train.weight_decay or None)
    raise ValueError(f"unknown optimizer {cfg.train.optimizer!r} (adadelta, adam or sgd)")


def compile_model(model, cfg, with_labels, summary=None, steps_per_epoch=None,
                  data_spec=None):
    """Compiles with the output space's loss (weighted by the colour prior of
    `summary`, the training set's dataset.json, where the space uses one) and,
    with labels, alpha x the scene cross-entropy. data_spec, the element spec of
    the batches it will train on, lets the loss's state be built here too."""
    import keras

    from colorization import systems

    _, output = systems.of_model(model)
    losses, weights = {output.name: output.loss(summary)}, {output.name: 1.0}
    if with_labels and cfg.model.scene_labels == "imagenet":  # soft targets
        losses["scene"] = keras.losses.CategoricalCrossentropy(name="scene_xent")
        weights["scene"] = cfg.train.class_loss_weight
    elif with_labels:
        losses["scene"] = keras.losses.SparseCategoricalCrossentropy(name="scene_xent")
        weights["scene"] = cfg.train.class_loss_weight
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=losses,
                  loss_weights=weights)
    # Built here (in the caller's strategy scope), the optimizer's slots exist before
    # fit or train_on_batch traces the step; built inside that trace (Keras's
    # default), they cost 7.7 s inside the trace against 0.46 s here (measured, 2 cores).
    model.optimizer.build(model.trainable_variables)
    if data_spec is not None:
        build_loss_state(model, data_spec)
    return model


def build_loss_state(model, data_spec):
    """Builds the compiled loss's per-output trackers from the batches' spec.

    Without a distribution strategy Keras builds them inside the first trace of
    the train step, and a tf.function that creates variables while it is traced
    is traced again: every run with the scene head (two outputs) traced its step
    twice. `_symbolic_build` is what Keras itself calls first under a strategy;
    where a Keras lacks it, the step is traced twice as before."""
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=data_spec)


class TrainingError(Exception):
    """Training stopped for a reason the user must act on (e.g. a NaN loss)."""


class RunInUse(Exception):
    """Another process is training the same run directory."""


def lock_run_dir(run_dir):
    """An exclusive lock on run_dir/.lock held until the process exits (or the
    returned file is closed), or RunInUse. Two processes resuming the same run
    would otherwise both train it and overwrite each other's checkpoints. The
    other workers of a multi-worker run only read it, so only the chief locks it."""
    import fcntl

    if multi_worker() and not is_chief():
        return None  # only the chief writes the run directory
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


@dataclasses.dataclass
class Run:
    """One training run, as `prepare` resolved it."""
    cfg: object
    data_dir: str
    run_dir: str
    write_dir: str  # run_dir on the chief; another worker's own scratch folder
    summary: dict
    network: object
    output: object
    with_labels: bool
    steps: int
    state: dict | None = None


def prepare(cfg, data_dir, run_dir, write_dir=None):
    """Resolves the run: dataset, system, labels, precision; writes config.json.
    Returns (Run, None), or (None, result) for a run that has already finished.
    Everything is read from run_dir and written to write_dir (default run_dir)."""
    import read_input
    from colorization import systems
    from colorization.atomic_io import write_json_atomic
    from colorization.callbacks import TrainingState
    from config import to_dict

    summary = read_input.load_summary(data_dir)
    network, output = systems.resolve(cfg)
    network.check(cfg)
    write_dir = write_dir or run_dir
    os.makedirs(run_dir, exist_ok=True)
    state = TrainingState(run_dir).load()
    if state and state.get("finished"):
        if state["epoch"] >= cfg.train.epochs:
            return None, {"status": "already finished", "run_dir": run_dir, **state}
        # --epochs past the end: the finished run goes on from its last state.
        state = {k: v for k, v in state.items() if k != "finished"}
        if write_dir == run_dir:
            write_json_atomic(TrainingState(run_dir).path, state)
    if cfg.model.scene_labels == "imagenet":
        with_labels = True
        cfg.model.num_classes = imagenet_labels_check(cfg, network, data_dir, summary)
    else:
        with_labels = summary["num_classes"] > 0 and network.has_scene_head
        cfg.model.num_classes = summary["num_classes"] if with_labels else 0
    cfg.model.output = output.name
    if not with_labels:
        cfg.train.class_loss_weight = 0.0
    policy, why = choose_precision(cfg.train.precision)
    before = getattr(cfg.train, "resumed_precision", policy)
    if before != policy:
        why += f"; the run went on under {before} before, its state carries over"
    cfg.train.precision = policy
    write_json_atomic(os.path.join(write_dir, "config.json"),
                      {**to_dict(cfg), "data": {**to_dict(cfg)["data"], "path": data_dir},
                       "class_names": summary.get("class_names") or []})
    steps = cfg.train.steps_per_epoch or max(1, summary["splits"]["train"]["count"]
                                             // cfg.train.batch_size)
    print(f"precision {policy}: {why}", flush=True)
    return Run(cfg, data_dir, run_dir, write_dir, summary, network, output, with_labels, steps,
               state), None


def imagenet_labels_check(cfg, network, data_dir, summary):
    """The scene head's class count for --scene-labels imagenet (1000), or
    ConfigError: a network without a scene head, or a dataset without labels."""
    from distill_labels import load_labels

    if not network.has_scene_head:
        raise ConfigError(f"--scene-labels imagenet: the {network.name} network has no scene "
                          "head (iizuka and lite have one)")
    if not cfg.train.label_temperature > 0:
        raise ConfigError("--label-temperature must be > 0")
    if not cfg.train.class_loss_weight > 0:
        raise ConfigError("--scene-labels imagenet: the scene loss has weight 0 (the "
                          f"{cfg.preset} preset's); give --class-loss-weight ALPHA")
    from colorization.efficientnet import imagenet_class_names

    try:
        _, log_probs = load_labels(data_dir, summary)
        names = imagenet_class_names()  # the head carries them; WeightsError if missing
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if log_probs.shape[1] != len(names):
        raise ConfigError(f"{data_dir}'s ImageNet labels have {log_probs.shape[1]} classes, "
                          f"not {len(names)}: run python distill_labels.py --data {data_dir}")
    return len(names)


def inputs(run, sample_count):
    """(training dataset, validation dataset, a validation batch for the sample pictures)."""
    import read_input

    cfg = run.cfg
    target = {"ab_stride": run.network.output_stride, "ab_key": run.output.name,
              "target": run.output.target, "with_labels": run.with_labels,
              "label_temperature": (cfg.train.label_temperature
                                    if cfg.model.scene_labels == "imagenet" else None)}
    train_ds = read_input.make_dataset(run.data_dir, "train", cfg.train.batch_size,
                                       training=True, crop_size=cfg.data.crop_size,
                                       shuffle_buffer=cfg.data.shuffle_buffer,
                                       seed=cfg.train.seed, **target)
    # Repeated, and fit is told how many batches a pass is (validation_steps): no
    # guessing at the end of a finite split, also when it is split over replicas.
    val_ds = read_input.make_dataset(run.data_dir, "val", cfg.train.batch_size, training=False,
                                     crop_size=cfg.data.crop_size, repeat=True, **target)
    samples = next(iter(read_input.make_dataset(run.data_dir, "val", sample_count,
                                                training=False, **target)))
    return train_ds, val_ds, samples


def make_model(run, strategy, data_spec=None):
    """The compiled model, with the saved state restored on a resume or the
    network's initialization (pretrained weights) on a fresh run."""
    import build_model
    from colorization.callbacks import TrainingState

    with strategy.scope():
        model = compile_model(build_model.build_model(run.cfg), run.cfg, run.with_labels,
                              run.summary, run.steps, data_spec)
        state = TrainingState(run.run_dir).restore(model)
        if not state and run.cfg.train.init_from:
            load_initial_weights(model, run.cfg.train.init_from)
        elif not state:
            run.network.initialize(model, run.cfg)
    return model, state


def load_initial_weights(model, path):
    """Copies the weights of the model saved at path into model (a fresh run that
    fine-tunes it); ConfigError when it is another network, width or output."""
    from colorization.inference import ModelError, load_model

    try:
        source = load_model(path)
    except ModelError as e:
        raise ConfigError(f"--init-from {path}: {e}") from None
    ours = [tuple(w.shape) for w in model.weights]
    theirs = [tuple(w.shape) for w in source.weights]
    if ours != theirs:
        raise ConfigError(f"--init-from {path} is another network, width or output than this "
                          f"run's ({len(theirs)} weights against {len(ours)}, or other shapes)")
    model.set_weights(source.get_weights())


def callbacks_for(run, samples, step0, best, progress, save_every_steps):
    import keras

    from colorization.callbacks import (
        Checkpointing,
        LearningCurves,
        NanGuard,
        ProgressBar,
        SamplePictures,
    )

    csv_path = os.path.join(run.write_dir, "log.csv")
    os.makedirs(os.path.join(run.write_dir, "plots"), exist_ok=True)
    every = save_every_steps if save_every_steps is not None else max(1, min(run.steps // 4,
                                                                             500))
    nan_guard = NanGuard()
    # SamplePictures adds its metrics to the epoch's logs, so it runs before the loggers.
    return nan_guard, [
        nan_guard,
        SamplePictures(run.write_dir, samples[0].numpy(), samples[1][run.output.name].numpy(),
                       run.cfg.inference.temperature, output=run.output),
        Checkpointing(run.write_dir, run.steps, every, start_step=step0, best=best),
        ProgressBar(run.steps, run.cfg.train.batch_size, run.cfg.train.epochs,
                    start_step=step0, enabled=progress and run.write_dir == run.run_dir),
        keras.callbacks.CSVLogger(csv_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(run.write_dir, "logs"), write_graph=False),
        LearningCurves(csv_path, os.path.join(run.write_dir, "plots", "learning_curves.png"))]


def validation_steps(run):
    """Batches in one pass over the val split (the last one partial)."""
    return max(1, math.ceil(run.summary["splits"]["val"]["count"] / run.cfg.train.batch_size))


def phases(run, state):
    """[(first epoch, end epoch, steps per epoch)] still to do: the interrupted epoch's
    remaining steps first, then whole epochs."""
    epoch0 = state["epoch"] if state else 0
    step0 = state["step_in_epoch"] if state else 0
    todo = []
    if step0 > 0 and epoch0 < run.cfg.train.epochs:
        todo.append((epoch0, epoch0 + 1, run.steps - step0))
        epoch0 += 1
    if epoch0 < run.cfg.train.epochs:
        todo.append((epoch0, run.cfg.train.epochs, run.steps))
    return todo


def fit(run, model, state, train_ds, val_ds, callbacks, nan_guard, strategy=None):
    """Runs the epochs still to do (the interrupted one first); TrainingError on a NaN."""
    from colorization.callbacks import TrainingState

    if strategy is not None and multi_worker():
        fit_multi_worker(run, model, state, train_ds, val_ds, callbacks, strategy)
    else:
        for initial, end, n_steps in phases(run, state):
            # shuffle=False: the tf.data pipeline shuffles; Keras would only warn.
            model.fit(train_ds, epochs=end, initial_epoch=initial, steps_per_epoch=n_steps,
                      validation_data=val_ds, validation_steps=validation_steps(run),
                      callbacks=callbacks, verbose=0, shuffle=False)
            if nan_guard.where:
                break
    full = next((c.disk_full for c in callbacks if getattr(c, "disk_full", None)), None)
    if full:
        last = TrainingState(run.write_dir).load()
        kept = (f"the last saved state (epoch {last['epoch']}, step {last['step_in_epoch']}) "
                "is kept" if last else "no state had been saved yet")
        raise TrainingError(f"{full}; training stopped and {kept}. Free some space and run "
                            "the same command again to resume.")
    if nan_guard.where:
        epoch, step = nan_guard.where
        last = TrainingState(run.write_dir).load()
        kept = (f"the last good state is from epoch {last['epoch']}, step "
                f"{last['step_in_epoch']} ({os.path.join(run.run_dir, 'state')})"
                if last else "no good state had been saved yet")
        raise TrainingError(f"the loss became NaN at epoch {epoch}, step {step}; "
                            f"training stopped and {kept}. Try a lower --learning-rate "
                            "or --precision float32.")


def _by_data(ds):
    """Every worker reads the same files and keeps its share of each batch: the
    shards are too few to give each worker whole files."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def fit_multi_worker(run, model, state, train_ds, val_ds, callbacks, strategy):
    """The same epochs, steps, validation and callbacks as Keras's fit, driven by a
    loop of our own: Keras's own train_step and test_step on every replica inside
    strategy.run, in one compiled function each, the logs averaged over replicas.
    Keras 3's fit itself fails under MultiWorkerMirroredStrategy (a PerReplica value
    it cannot convert; keras-team/keras#20585), the strategy and the steps do not.
    Every worker runs every step and every save (saving reads the replicas'
    variables); only the chief's writes land in the run directory."""
    import keras
    import tensorflow as tf

    def reduced(logs):
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    @tf.function
    def train_step(iterator):
        return reduced(strategy.run(model.train_step, args=(next(iterator),)))

    @tf.function
    def test_step(iterator):
        return reduced(strategy.run(model.test_step, args=(next(iterator),)))

    train_it = iter(strategy.experimental_distribute_dataset(_by_data(train_ds)))
    val_it = iter(strategy.experimental_distribute_dataset(_by_data(val_ds)))
    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    hooks.on_train_begin()
    for initial, end, n_steps in phases(run, state):
        for epoch in range(initial, end):
            model.reset_metrics()
            hooks.on_epoch_begin(epoch)
            logs = {}
            for step in range(n_steps):
                hooks.on_train_batch_begin(step)
                logs = {k: float(v) for k, v in train_step(train_it).items()}
                hooks.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            if model.stop_training:
                break
            model.reset_metrics()
            for _ in range(validation_steps(run)):
                val = test_step(val_it)
            logs.update({f"val_{k}": float(v) for k, v in val.items()})
            hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()


def weights_digest(model):
    """A short hash of the trainable weights: equal on every worker of a multi-worker
    run. (Batch normalization's moving statistics are not in it: as under any
    MirroredStrategy, each replica keeps its own, from its share of the batch, and
    the chief's are the ones saved.)"""
    import hashlib

    import keras
    import numpy as np

    digest = hashlib.sha1()
    for v in model.trainable_weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(v)).tobytes())
    return digest.hexdigest()[:16]


def finish(run, seconds):
    """Marks the run finished; returns the dict `train` reports."""
    from colorization.atomic_io import write_json_atomic
    from colorization.callbacks import TrainingState

    final = TrainingState(run.write_dir).load() or {}
    write_json_atomic(TrainingState(run.write_dir).path, {**final, "finished": True})
    # The learning curves are already drawn: LearningCurves redraws them every epoch.
    curves = os.path.join(run.run_dir, "plots", "learning_curves.png")  # the chief's
    return {"status": "trained", "run_dir": run.run_dir, "seconds": seconds,
            "model": os.path.join(run.run_dir, "model.keras"),
            "best": os.path.join(run.run_dir, "best.keras"), "plots": curves,
            "samples": os.path.join(run.run_dir, "samples"), "steps_per_epoch": run.steps,
            "global_step": final.get("global_step")}


def train(cfg, data_dir, run_dir, logical_devices=0, progress=True, sample_count=4,
          save_every_steps=None):
    """Trains (or resumes) a run; returns a dict describing the finished run.

    The caller's cfg is not changed, and the global dtype policy is restored."""
    import keras

    cfg = copy.deepcopy(cfg)
    os.makedirs(run_dir, exist_ok=True)
    lock = lock_run_dir(run_dir)  # noqa: F841 (held while this function runs)
    # A worker that is not the chief reads the run directory (the chief's state) and
    # writes what every worker writes into a scratch folder of its own.
    scratch = None if is_chief() else tempfile.mkdtemp(prefix="colorization-worker-")
    previous_policy = keras.mixed_precision.global_policy()
    try:
        run, result = prepare(cfg, data_dir, run_dir, scratch)
        if result:
            return result
        keras.utils.set_random_seed(cfg.train.seed)
        keras.mixed_precision.set_global_policy(cfg.train.precision)
        strategy, how = choose_strategy(logical_devices)
        print(f"distribution: {how} ({strategy.num_replicas_in_sync} replica(s))", flush=True)
        train_ds, val_ds, samples = inputs(run, sample_count)
        model, state = make_model(run, strategy, train_ds.element_spec)
        if state:
            print(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step "
                  f"{state['step_in_epoch']} of {run.steps} (global step "
                  f"{state['global_step']})", flush=True)
        nan_guard, callbacks = callbacks_for(
            run, samples, state["step_in_epoch"] if state else 0,
            state.get("best_val_loss", math.inf) if state else math.inf, progress,
            save_every_steps)
        start = time.perf_counter()
        fit(run, model, state, train_ds, val_ds, callbacks, nan_guard, strategy)
        result = finish(run, time.perf_counter() - start)
        if multi_worker():
            result["weights_digest"] = weights_digest(model)
        return result
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def export_model(run_dir, path, which="model.keras", saturation=None):
    """A run's model as a small file for sharing: float32 weights in a model built
    afresh from the run's config (no optimizer state, no mixed-precision policy, so
    it runs at full speed on machines without bfloat16). saturation: the chroma
    scale the file carries for model_transform.py and the rest (layers.
    InferenceDefaults; None: none, the network's own colours). Returns the path."""
    import keras

    import build_model
    from colorization.atomic_io import replace_atomic
    from colorization.inference import load_model

    cfg = load_run_config(run_dir)
    trained = load_model(os.path.join(run_dir, which))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        fresh = build_model.build_model(cfg)
        fresh.set_weights(trained.get_weights())
        if saturation is not None:
            fresh = with_inference_defaults(fresh, saturation)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        replace_atomic(path, fresh.save, suffix=".keras")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return path


def with_inference_defaults(model, saturation):
    """The same model (layers, weights, name) whose colour output passes through an
    InferenceDefaults layer carrying `saturation`."""
    import keras

    from colorization import systems
    from colorization.layers import INFERENCE_DEFAULTS, InferenceDefaults

    _, output = systems.of_model(model)
    outputs = dict(model.output)
    outputs[output.name] = InferenceDefaults(saturation, name=INFERENCE_DEFAULTS)(
        outputs[output.name])
    return keras.Model(model.input, outputs, name=model.name)


def benchmark_setup(cfg, policy, batch_size, warmup=3):
    """A compiled model of cfg under `policy` and one random 224x224 batch (x, y) of
    its targets, after `warmup` training steps on it: what the training benchmarks
    (benchmark_training, bench.py --profile) time."""
    import numpy as np

    import build_model
    from colorization import systems

    build_model.set_precision(policy)
    cfg.train.precision = policy
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 224, 224, 1), np.float32)
    network, output = systems.resolve(cfg)
    side = 224 // network.output_stride
    y = {output.name: rng.random((batch_size, side, side, 2), np.float32)}
    if cfg.model.num_classes and cfg.model.scene_labels == "imagenet":  # soft targets
        y["scene"] = rng.dirichlet(np.ones(cfg.model.num_classes), batch_size).astype("float32")
    elif cfg.model.num_classes:
        y["scene"] = rng.integers(0, cfg.model.num_classes, batch_size).astype("int32")
    model = compile_model(build_model.build_model(cfg), cfg, cfg.model.num_classes > 0,
                          data_spec=(x, y))
    for _ in range(warmup):
        model.train_on_batch(x, y)
    return model, x, y


def benchmark_training(cfg, policy, batch_size, steps=8, warmup=3):
    """Median training images/s on random 224x224 batches (no input pipeline)."""
    import keras
    import numpy as np

    model, x, y = benchmark_setup(cfg, policy, batch_size, warmup)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    keras.backend.clear_session()
    return batch_size / float(np.median(times)), times


def parse_args(argv):
    from config import add_model_flags

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    quiet.add_verbose_flag(p)
    add_model_flags(p, preset_default=None)  # None: the run's own, or "paper" for a new run
    p.add_argument("--data", default="data/scenes", help="dataset folder (input_create.py)")
    p.add_argument("--run-dir", help="run directory (default runs/PRESET)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--steps-per-epoch", type=int, help="default: one pass over the train split")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--optimizer", choices=["adadelta", "adam", "sgd"])
    p.add_argument("--lr-decay-epochs", type=float,
                   help="halve (lr_decay_factor) the learning rate every N epochs")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay (Adam, SGD)")
    p.add_argument("--init-from", metavar="MODEL.keras",
                   help="start a new run from this model's weights (same network, width "
                        "and output), for example resources/models/real-photos.keras")
    p.add_argument("--vgg-weights", metavar="FILE|imagenet|none",
                   help="VGG-16 weights of the larsson / varga presets: imagenet (download), "
                        "a local file of the convolutional weights, or none (random)")
    p.add_argument("--encoder", choices=["lite0", "lite1", "lite2"],
                   help="the lite networks' pretrained EfficientNet-Lite (default lite0)")
    p.add_argument("--encoder-training", choices=["frozen", "frozen_bn", "fine_tune"],
                   help="the lite networks' encoder: frozen (default), frozen_bn (its batch "
                        "norms kept, the rest trained) or fine_tune")
    p.add_argument("--scene-labels", choices=["imagenet"],
                   help="imagenet: the scene head learns the 1,000 ImageNet classes from the "
                        "pretrained classifier's soft labels (run distill_labels.py first)")
    p.add_argument("--label-temperature", type=float, metavar="T",
                   help="with --scene-labels imagenet: soft targets softmax(log p / T) "
                        "(default 1: the classifier's own probabilities)")
    p.add_argument("--class-loss-weight", type=float, metavar="ALPHA",
                   help="weight of the scene head's cross-entropy (Iizuka et al.'s alpha)")
    p.add_argument("--precision", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"])
    p.add_argument("--seed", type=int)
    p.add_argument("--logical-cpus", type=int, default=0,
                   help="split the CPU into N devices and mirror over them (for testing)")
    p.add_argument("--save-every", type=int, help="steps between resumable saves")
    p.add_argument("--benchmark", action="store_true",
                   help="measure training images/s under float32 and the auto policy")
    p.add_argument("--export", metavar="PATH.keras",
                   help="write the run's model (--run-dir) as a small float32 file and exit")
    p.add_argument("--saturation", type=float, metavar="S",
                   help="with --export: the chroma scale the file carries (chosen on a "
                        "validation set: evaluate.py --saturation), which model_transform.py "
                        "uses unless told otherwise")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "steps_per_epoch", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.learning_rate is not None and not args.learning_rate > 0:
        p.error("--learning-rate must be > 0")
    for name in ("lr_decay_epochs", "weight_decay"):
        if getattr(args, name) is not None and not getattr(args, name) >= 0:
            p.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.label_temperature is not None and not args.label_temperature > 0:
        p.error("--label-temperature must be > 0")
    if args.class_loss_weight is not None and not args.class_loss_weight >= 0:
        p.error("--class-loss-weight must be 0 or more")
    if args.init_from is not None and not os.path.isfile(args.init_from):
        p.error(f"--init-from {args.init_from}: no such file")
    if args.logical_cpus < 0:
        p.error("--logical-cpus must be 0 or more")
    return args


class ConfigError(ValueError):
    """Flags that cannot be applied; str() is the one-line reason."""


def _requested(args):
    """({section: {field: value}}) of what the flags ask for, model flags included."""
    from config import model_overrides

    train = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size,
                               "steps_per_epoch": args.steps_per_epoch,
                               "learning_rate": args.learning_rate, "optimizer": args.optimizer,
                               "precision": args.precision, "seed": args.seed,
                               "lr_decay_epochs": args.lr_decay_epochs,
                               "weight_decay": args.weight_decay,
                               "init_from": args.init_from,
                               "label_temperature": args.label_temperature,
                               "class_loss_weight": args.class_loss_weight}.items()
             if v is not None}
    model = model_overrides(args)
    if args.vgg_weights is not None:
        model["backbone_weights"] = args.vgg_weights
    for name in ("encoder", "encoder_training", "scene_labels"):
        if getattr(args, name) is not None:
            model[name] = getattr(args, name)
    return {"train": train, "model": model}


def load_run_config(run_dir):
    """The Config a run directory's config.json saved (data path and class names,
    kept there for people and model_transform.py, left out)."""
    from config import from_dict

    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    saved["data"].pop("path", None)
    saved.pop("class_names", None)
    return from_dict(saved)


def resolve_config(args):
    """(config, run dir). A new run: the preset with the flags applied. A resumed
    run: its own saved config; --epochs extends or shortens it, and any other
    flag that would change it is refused (ConfigError naming it) rather than
    ignored."""
    from config import get_config, to_dict

    preset = args.preset or "paper"
    run_dir = args.run_dir or os.path.join("runs", preset)
    saved = os.path.join(run_dir, "config.json")
    requested = _requested(args)
    if not os.path.exists(saved) or args.benchmark:
        return get_config(preset, **requested), run_dir
    try:
        cfg = load_run_config(run_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{saved} is not a readable run configuration ({e}); use another "
                          "--run-dir") from None
    current = to_dict(cfg)
    # The precision belongs to the machine, not to the run: the weights and the
    # optimizer's slots are float32 under every policy, so a run started in bf16
    # goes on in float32 on a CPU without bf16 (and back), by --precision or by
    # what auto picks here.
    changed = [f"--{k.replace('_', '-')} {v} (the run has {current[section][k]})"
               for section, values in requested.items() for k, v in values.items()
               if k not in ("epochs", "precision") and current[section].get(k) != v]
    if args.preset and args.preset != cfg.preset:
        changed.append(f"--preset {args.preset} (the run has {cfg.preset})")
    if changed:
        raise ConfigError(f"{run_dir} was started with other settings; resuming keeps them, so "
                          f"{'; '.join(changed)} cannot apply: use another --run-dir")
    if args.epochs:
        cfg.train.epochs = args.epochs
    cfg.train.resumed_precision = cfg.train.precision
    cfg.train.precision = args.precision or "auto"
    return cfg, run_dir


def build_model_checks(cfg):
    """Raises ValueError for a config no network can be built or initialised from."""
    from colorization import systems

    network, _ = systems.resolve(cfg)
    network.check(cfg)


def main(argv=None):
    args = parse_args(argv)
    if args.export:
        return export_main(args)
    if args.logical_cpus > 1:
        configure_logical_cpus(args.logical_cpus)
    try:
        cfg, run_dir = resolve_config(args)
        build_model_checks(cfg)
    except ValueError as e:
        print(f"model_train.py: error: {e}", file=sys.stderr)
        return 2
    if args.benchmark:
        return benchmark_main(cfg, args.batch_size or 16)
    try:
        result = train(cfg, args.data, run_dir, logical_devices=args.logical_cpus,
                       progress=sys.stderr.isatty(), save_every_steps=args.save_every)
    except Exception as e:
        code = failure_status(e, args.data)  # one line for what the user can act on
        if code is None:
            raise
        return code
    print_outcome(result, run_dir)
    return 0


def export_main(args):
    """--export: the run's model.keras as a float32 model, saturation baked in."""
    if not args.run_dir or not os.path.exists(os.path.join(args.run_dir, "model.keras")):
        print("model_train.py: error: --export needs --run-dir of a run with a model.keras",
              file=sys.stderr)
        return 2
    if args.saturation is not None and not 0.0 <= args.saturation <= 2.0:
        print("model_train.py: error: --saturation must be between 0 and 2", file=sys.stderr)
        return 2
    print(f"wrote {export_model(args.run_dir, args.export, saturation=args.saturation)}")
    return 0


def benchmark_main(cfg, batch):
    """--benchmark: training images/s in float32 and under the automatic policy."""
    auto, why = choose_precision("auto")
    for policy in dict.fromkeys(["float32", auto]):
        rate, _ = benchmark_training(cfg, policy, batch)
        note = f" - auto: {why}" if policy == auto else ""
        print(f"{cfg.preset} preset, {policy}: {rate:.2f} training images/s "
              f"(batch {batch}, median of 8 steps){note}", flush=True)
    return 0


def failure_status(error, data):
    """The message and exit status of a training stopped by `error`: 2 for what the
    user's input or setup refused, 1 for a run that stopped (its saved state kept);
    None for anything else (the caller raises it)."""
    import read_input
    from colorization.callbacks import StateError
    from colorization.hypercolumn import WeightsError

    # WeightsError: a VGG-16 weights file that does not load.
    if isinstance(error, (read_input.DatasetError, WeightsError, RunInUse, StateError,
                          ConfigError)):
        print(f"model_train.py: error: {error}", file=sys.stderr)
        return 2
    if isinstance(error, TrainingError):
        print(f"model_train.py: {error}", file=sys.stderr)
        return 1
    # A record that does not read (a damaged shard) stops training; the state
    # saved before it is kept. Stop with the cause and the way to repair it.
    import tensorflow as tf

    if not isinstance(error, (tf.errors.DataLossError, tf.errors.InvalidArgumentError)):
        return None
    first = read_input.record_error_text(error)
    print(f"model_train.py: error: a record of {data} cannot be read ({first}); "
          f"`python read_input.py {data} --verify` names the damaged shard and how "
          "to rebuild it; training resumes from the last saved step", file=sys.stderr)
    return 1


def print_outcome(result, run_dir):
    if result["status"] == "already finished":
        print(f"{run_dir} has already finished training (epoch {result.get('epoch')}); "
              f"its model is {os.path.join(run_dir, 'model.keras')}")
        return
    if "weights_digest" in result:  # the same on every worker
        print(f"worker weights digest: {result['weights_digest']}")
    print(f"trained in {result['seconds'] / 60:.1f} min: model {result['model']} "
          f"(best on validation: {result['best']}); learning curves {result['plots']}; "
          f"sample colorizations in {result['samples']}/")

if __name__ == "__main__":
    sys.exit(interrupts.run(main, "model_train.py",
                            "the same command resumes the run from its last saved state "
                            "(the end of each epoch, or every --save-every steps)"))
