"""Callbacks that make a training run survive for weeks: resumable checkpoints,
a NaN guard, a progress bar with images/s, sample pictures and learning curves.
"""

import csv
import json
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np
from tqdm import tqdm

from colorization import metrics
from colorization.atomic_io import (
    replace_atomic,
    save_figure_atomic,
    write_json_atomic,
    write_png_atomic,
)
from colorization.colorspace import compose_rgb, model_to_ab, to_uint8


def save_model_atomic(model, path):
    # Keras picks the format from the name, so the temporary keeps ".keras".
    replace_atomic(path, model.save, suffix=".keras")


class StateError(ValueError):
    """A run's saved state cannot be read; str() says what to do."""


class DiskFull(OSError):
    """Too little free space to save; str() says where and how much."""


def saved_size(model):
    """Bytes a save of the model's and optimizer's variables takes, with a margin
    for the file's own structure (measured: the demo state is 1.02x its arrays)."""
    variables = list(model.weights) + list(getattr(model.optimizer, "variables", []) or [])
    arrays = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return int(arrays * 1.1) + (1 << 20)


def ensure_free_space(folder, needed):
    """DiskFull before a save that would not fit: h5py meeting a full disk half-way
    prints tracebacks and has crashed the process (exit 139), leaving a torn file."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFull(f"the disk of {folder} is full: a save needs about "
                       f"{needed / 1e6:.0f} MB and {free / 1e6:.0f} MB are free")


class TrainingState:
    """Where a run is: `state/state.json` names the weights file of the last good step.

    The weights (model and optimizer variables) go to a new file first; the
    state file is then replaced atomically, so a SIGKILL at any moment leaves
    either the previous or the new state, never a torn one.
    """

    def __init__(self, run_dir):
        self.dir = os.path.join(run_dir, "state")
        self.path = os.path.join(self.dir, "state.json")

    def load(self):
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, encoding="utf-8") as f:
                state = json.load(f)
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("no epoch in it")
            return state
        except (OSError, ValueError) as e:
            raise StateError(f"{self.path} is damaged ({str(e).splitlines()[0][:80]}); move "
                             "the run's state/ folder away to start the run afresh") from None

    def save(self, model, **state):
        os.makedirs(self.dir, exist_ok=True)
        name = f"step-{state['global_step']:09d}.weights.h5"
        model.save_weights(os.path.join(self.dir, name))
        previous = self.load()
        write_json_atomic(self.path, {**state, "weights": name})
        if previous and previous.get("weights") not in (None, name):
            try:
                os.remove(os.path.join(self.dir, previous["weights"]))
            except FileNotFoundError:
                pass

    def restore(self, model):
        state = self.load()
        if state and state.get("weights"):
            optimizer = model.optimizer
            if optimizer is not None and not optimizer.built:
                optimizer.build(model.trainable_variables)
            path = os.path.join(self.dir, state["weights"])
            saved_scaled = _saved_with_loss_scale(path)
            scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            if optimizer is None or saved_scaled == scaled:
                model.load_weights(path)
            else:
                # A run resumed under another policy, into or out of mixed_float16:
                # Keras wraps the optimizer in a LossScaleOptimizer there, and its
                # load_weights would skip the optimizer's variables with a warning
                # (the step count and Adam's moments lost). The layers load as usual;
                # the inner optimizer's variables are carried over here.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                    model.load_weights(path)
                _load_optimizer_variables(path, optimizer.inner_optimizer if scaled
                                          else optimizer, saved_scaled)
        return state


def _saved_with_loss_scale(path):
    import h5py

    with h5py.File(path, "r") as f:
        return "optimizer/inner_optimizer/vars" in f


def _load_optimizer_variables(path, optimizer, saved_scaled):
    """Assigns the saved optimizer's (or the saved LossScaleOptimizer's inner
    optimizer's) variables to `optimizer`, which must have the same ones."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f["optimizer/inner_optimizer/vars" if saved_scaled else "optimizer/vars"]
        values = [group[str(i)][()] for i in range(len(group))]
    targets = optimizer.variables
    if len(values) != len(targets) or any(
            tuple(v.shape) != tuple(t.shape) for v, t in zip(values, targets, strict=True)):
        raise StateError(f"{path} holds an optimizer state of another shape "
                         f"({len(values)} variables, this run's optimizer has {len(targets)}); "
                         "move the run's state/ folder away to start it afresh")
    for target, value in zip(targets, values, strict=True):
        target.assign(value)


class Checkpointing(keras.callbacks.Callback):
    """Saves the resumable state every `every_steps` steps and at each epoch end,
    `model.keras` at each epoch end and `best.keras` on the best val_loss; never
    saves a state whose loss is not finite."""

    def __init__(self, run_dir, steps_per_epoch, every_steps, start_step=0, best=math.inf):
        super().__init__()
        self.run_dir, self.steps_per_epoch, self.every = run_dir, steps_per_epoch, every_steps
        self.state = TrainingState(run_dir)
        self.epoch, self.step_in_epoch, self.first_step = 0, start_step, start_step
        self.best = best
        self.disk_full = None  # the reason training stopped for want of space

    def _fits(self):
        """Whether the next save fits on the disk; if not, stops training (the last
        saved state stays) and keeps the reason for model_train.py to report."""
        try:
            ensure_free_space(self.run_dir, saved_size(self.model))
            return True
        except DiskFull as e:
            self.disk_full = str(e)
            self.model.stop_training = True
            return False

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step_in_epoch = self.first_step + batch + 1
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            return
        if self.every and self.step_in_epoch % self.every == 0 \
                and self.step_in_epoch < self.steps_per_epoch and self._fits():
            self._save_state(self.epoch, self.step_in_epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.first_step = 0
        if not all(math.isfinite(float(v)) for v in logs.values()) or not self._fits():
            return
        val = float(logs.get("val_loss", logs.get("loss", math.inf)))
        if val < self.best:
            self.best = val
            save_model_atomic(self.model, os.path.join(self.run_dir, "best.keras"))
        save_model_atomic(self.model, os.path.join(self.run_dir, "model.keras"))
        self._save_state(epoch + 1, 0)

    def _save_state(self, epoch, step):
        self.state.save(self.model, epoch=epoch, step_in_epoch=step,
                        global_step=int(self.model.optimizer.iterations.numpy()),
                        best_val_loss=self.best, time=time.time())


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where."""

    def __init__(self):
        super().__init__()
        self.epoch, self.where = 0, None

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class ProgressBar(keras.callbacks.Callback):
    """tqdm bar per epoch with loss and images/s (Keras's own bar shows no rate)."""

    def __init__(self, steps_per_epoch, batch_size, epochs, start_step=0, enabled=True):
        super().__init__()
        self.steps, self.batch_size, self.epochs = steps_per_epoch, batch_size, epochs
        self.start_step, self.enabled = start_step, enabled
        self.bar, self.t0 = None, None

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self.bar = tqdm(total=self.steps, initial=self.start_step, unit="step",
                        desc=f"epoch {epoch + 1}/{self.epochs}", disable=not self.enabled,
                        dynamic_ncols=True)
        self.t0, self.done = time.perf_counter(), 0
        self.start_step = 0

    def on_train_batch_end(self, batch, logs=None):  # noqa: ARG002 (Keras's signature)
        self.done += 1
        rate = self.done * self.batch_size / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.4f}", img_s=f"{rate:.1f}")
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        rate = self.done * self.batch_size / max(time.perf_counter() - self.t0, 1e-9)
        shown = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items()
                          if k.endswith("loss"))
        print(f"epoch {epoch + 1}/{self.epochs}: {shown}; {rate:.1f} images/s", flush=True)


class SamplePictures(keras.callbacks.Callback):
    """Every epoch, colorizes a few fixed validation images: gray | model | truth,
    and adds their ab RMSE and AuC (metrics.py, in ab units / %) to the logs as
    sample_ab_rmse and sample_auc. A classification head is decoded by annealed
    mean at `temperature`."""

    def __init__(self, run_dir, lightness, target, temperature=None, output=None):
        super().__init__()
        self.dir = os.path.join(run_dir, "samples")
        self.lightness, self.temperature = lightness, temperature
        self.ab_true = (np.asarray(target, np.float32) if output is None
                        else output.target_ab01(target, lightness))

    def on_epoch_end(self, epoch, logs=None):
        from colorization.systems import decoded_ab01

        # A direct call, not predict: it also runs under a multi-worker strategy.
        out = self.model(self.lightness, training=False)
        pred = decoded_ab01(out, self.temperature, gray=self.lightness)
        if logs is not None:
            pred_ab, true_ab = model_to_ab(pred), model_to_ab(self.ab_true)
            logs["sample_ab_rmse"] = metrics.ab_rmse(pred_ab, true_ab)
            logs["sample_auc"] = metrics.auc(metrics.ab_errors(pred_ab, true_ab))
        rows = []
        for k in range(len(self.lightness)):
            gray = np.repeat(self.lightness[k], 3, -1)
            rows.append(np.concatenate([gray, compose_rgb(self.lightness[k], pred[k]),
                                        compose_rgb(self.lightness[k], self.ab_true[k])], 1))
        grid = to_uint8(np.concatenate(rows, 0))
        os.makedirs(self.dir, exist_ok=True)
        write_png_atomic(os.path.join(self.dir, f"epoch-{epoch + 1:03d}.png"), grid)


def plot_learning_curves(csv_path, out_path):
    """PNG of every loss column of the CSV log against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    keys = [k for k in rows[0] if k.endswith("loss")]
    groups = sorted({k.removeprefix("val_") for k in keys})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.4), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, name in zip(axes[0], groups, strict=True):
        for key, style in ((name, "-o"), ("val_" + name, "--s")):
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure_atomic(fig, out_path)
    return out_path


class LearningCurves(keras.callbacks.Callback):
    """Redraws the learning-curve plot after every epoch (a killed run keeps it)."""

    def __init__(self, csv_path, out_path):
        super().__init__()
        self.csv_path, self.out_path = csv_path, out_path

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        # CSVLogger (earlier in the list) has written this epoch's row already.
        plot_learning_curves(self.csv_path, self.out_path)
