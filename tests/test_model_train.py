import csv
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ONE_DEVICE_ARGS, ROOT, build_scenes, run_main, run_script, wait_for_state

import build_model
import model_train
import read_input
from colorization import devices
from colorization.callbacks import Checkpointing, NanGuard, TrainingState
from config import get_config


def tiny_cfg(**train):
    base = {"batch_size": 8, "epochs": 1, "steps_per_epoch": 4, "precision": "float32",
            "seed": 0, "learning_rate": 5e-3}
    return get_config("demo", train={**base, **train})


def val_ab_rmse(model, data_dir):
    """Root mean squared ab error on the val split, in ab units (0..255 scale)."""
    ds = read_input.make_dataset(data_dir, "val", 16, training=False)
    errors = [np.mean((model.predict(x, verbose=0)["ab"] - y["ab"].numpy()) ** 2) * len(x)
              for x, y in ds]
    n = sum(len(x) for x, _ in ds)
    return float(np.sqrt(sum(errors) / n) * 255.0)


def run_cli(*args):
    """model_train.py's main in this process (conftest.run_main)."""
    return run_main(model_train.main, args)


def test_short_training_lowers_validation_ab_error(short_run, sky_scenes):
    run, result, untrained_path = short_run.run, short_run.result, short_run.untrained
    untrained = val_ab_rmse(keras.saving.load_model(untrained_path), sky_scenes)
    trained = val_ab_rmse(keras.saving.load_model(result["model"]), sky_scenes)
    # Measured on this data: untrained 26.4, after 60 steps of batch 16 at 3e-3 13.3 (ab
    # units).
    assert trained < 0.7 * untrained, (untrained, trained)
    for name in ("model.keras", "best.keras", "config.json", "log.csv",
                 "plots/learning_curves.png", "samples/epoch-004.png"):
        assert os.path.exists(os.path.join(run, name)), name
    # The sample metrics (metrics.py) are logged every epoch.
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and 0 < float(rows[-1]["sample_auc"]) <= 100
    assert float(rows[-1]["sample_ab_rmse"]) > 0


def test_export_writes_float32_and_carries_a_chosen_saturation(short_run, tmp_path):
    """--export --saturation S: the file carries S (layers.InferenceDefaults), which the
    Colorizer then uses by default; without it, 1 (the network's own colours)."""
    from colorization import inference, systems
    from colorization.layers import model_saturation

    run = short_run.run
    plain, marked = str(tmp_path / "plain.keras"), str(tmp_path / "marked.keras")
    assert run_main(model_train.main, ["--run-dir", run, "--export", plain]).returncode == 0
    proc = run_main(model_train.main, ["--run-dir", run, "--export", marked, "--saturation",
                                       "0.5"])
    assert proc.returncode == 0 and f"wrote {marked}" in proc.stdout, proc.stderr
    a, b = inference.load_model(plain), inference.load_model(marked)
    assert {layer.dtype_policy.name for layer in b.layers} == {"float32"}
    assert (model_saturation(a), model_saturation(b)) == (1.0, 0.5)
    assert systems.of_model(a) == systems.of_model(b)
    x = np.random.default_rng(0).random((1, 40, 56, 1)).astype(np.float32)
    want = inference.Colorizer(a, saturation=0.5).predict(x)[0]
    np.testing.assert_allclose(inference.Colorizer(b).predict(x)[0], want, atol=1e-6)
    assert not np.allclose(inference.Colorizer(a).predict(x)[0], want, atol=1e-3)
    proc = run_main(model_train.main, ["--run-dir", run, "--export", marked, "--saturation",
                                       "5"])
    assert proc.returncode == 2 and "--saturation must be between 0 and 2" in proc.stderr


def test_finished_run_says_so_and_missing_data_is_a_usage_error(tmp_path, short_run,
                                                                scenes_dataset):
    run = short_run.run  # finished: its 4 epochs are done
    files = {n: os.path.getmtime(os.path.join(run, n)) for n in ("config.json", "log.csv",
                                                                 "model.keras")}
    again = run_cli("--preset", "demo", "--data", scenes_dataset, "--run-dir", run)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert files == {n: os.path.getmtime(os.path.join(run, n)) for n in files}  # untouched
    missing = run_cli("--preset", "demo", "--data", str(tmp_path / "none"), "--run-dir",
                      str(tmp_path / "r2"))
    assert missing.returncode == 2 and "input_create.py" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_run_being_trained_cannot_be_started_twice(tmp_path, scenes_dataset):
    run = str(tmp_path / "run")
    os.makedirs(run)
    held = model_train.lock_run_dir(run)  # as a first training process would
    busy = run_cli("--preset", "demo", "--data", scenes_dataset, "--run-dir", run)
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert f"is being trained by process {os.getpid()}" in busy.stderr
    assert not os.path.exists(os.path.join(run, "config.json"))  # it touched nothing
    held.close()
    with pytest.raises(model_train.RunInUse):  # and in-process, while held
        held = model_train.lock_run_dir(run)
        model_train.lock_run_dir(run)


def test_state_round_trip_keeps_weights_and_optimizer_step(short_run):
    """The state a run saved, restored into a freshly built model: the trained
    weights, the optimizer's step and its moments."""
    run, result = short_run.run, short_run.result
    cfg = model_train.load_run_config(run)
    build_model.set_precision("float32")
    fresh = model_train.compile_model(build_model.build_model(cfg), cfg, True)
    moments = [v for v in fresh.optimizer.variables if "momentum" in v.path]
    assert moments and not any(np.any(keras.ops.convert_to_numpy(v)) for v in moments)
    state = TrainingState(run).restore(fresh)
    assert state["global_step"] == 60 and state["finished"]
    assert int(fresh.optimizer.iterations.numpy()) == 60
    assert all(np.any(keras.ops.convert_to_numpy(v)) for v in moments)
    trained = keras.saving.load_model(result["model"])  # written after the last step
    for a, b in zip(trained.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_nan_loss_stops_and_saves_nothing(tmp_path):
    guard, ckpt = NanGuard(), Checkpointing(str(tmp_path), 10, every_steps=1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    for cb in (guard, ckpt):
        cb.set_model(model)
        cb.on_epoch_begin(0)
    ckpt.on_train_batch_end(0, {"loss": 1.0})
    assert TrainingState(str(tmp_path)).load()["step_in_epoch"] == 1
    for cb in (guard, ckpt):
        cb.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training and guard.where == (1, 2)
    assert TrainingState(str(tmp_path)).load()["step_in_epoch"] == 1  # the good state stays
    ckpt.on_epoch_end(0, {"loss": float("nan")})
    assert not os.path.exists(tmp_path / "model.keras")


def test_a_full_disk_stops_training_with_one_line_and_keeps_the_last_state(
        tmp_path, scenes_dataset, monkeypatch):
    """Before: h5py met the full disk half-way through a save, printed tracebacks and
    crashed the process (exit 139), leaving a torn weights file. Now every save is
    measured against the free space first."""
    import shutil

    from colorization import callbacks

    real = shutil.disk_usage
    saves = []

    def usage(path):
        total, used, free = real(path)
        saves.append(path)
        return type(real(path))(total, used, free if len(saves) <= 1 else 1 << 20)

    monkeypatch.setattr(callbacks.shutil, "disk_usage", usage)
    run = str(tmp_path / "run")
    code = run_cli("--preset", "demo", "--data", scenes_dataset, "--run-dir", run,
                   "--epochs", "1", "--steps-per-epoch", "4", "--save-every", "2",
                   "--batch-size", "8", "--precision", "float32")
    lines = code.stderr.strip().splitlines()
    assert code.returncode == 1 and "Traceback" not in code.stderr
    assert "is full" in lines[-1] and "epoch 0, step 2" in lines[-1], lines[-1]
    state = TrainingState(run).load()
    assert state["step_in_epoch"] == 2
    # No torn or partial weights file beside the kept one.
    assert sorted(os.listdir(os.path.join(run, "state"))) == sorted(["state.json",
                                                                    state["weights"]])
    monkeypatch.setattr(callbacks.shutil, "disk_usage", real)  # space freed: it resumes
    again = run_cli("--data", scenes_dataset, "--run-dir", run)
    assert again.returncode == 0, again.stderr
    assert TrainingState(run).load()["epoch"] == 1


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_one_step_under_each_precision_policy_is_traced_once(policy, scenes_dataset):
    cfg = tiny_cfg(precision=policy)
    build_model.set_precision(policy)
    try:
        x, y = next(iter(read_input.make_dataset(scenes_dataset, "train", 4, seed=0)))
        model = model_train.compile_model(build_model.build_model(cfg), cfg, True,
                                          data_spec=(x, y))
        traces = []
        step = model.train_step
        model.train_step = lambda data: traces.append(1) or step(data)
        logs = model.train_on_batch(x, y, return_dict=True)
        model.train_on_batch(x, y)
    finally:
        build_model.set_precision("float32")
    assert all(np.isfinite(v) for v in logs.values()), logs
    # Two outputs (ab and scene): without the loss state built up front, Keras built
    # it inside the first trace and then traced the step a second time.
    assert len(traces) == 1, len(traces)


def test_auto_precision_says_why():
    policy, why = devices.choose_precision("auto")
    assert policy in ("float32", "mixed_float16", "mixed_bfloat16") and why
    assert devices.choose_precision("float32") == ("float32", "requested")


@pytest.mark.parametrize("cc, expected", [((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
                                          ((7, 5), "mixed_float16"), ((6, 1), "float32")])
def test_auto_precision_on_a_gpu_follows_its_compute_capability(monkeypatch, cc, expected):
    monkeypatch.setattr(devices, "gpus", lambda: [("Some GPU", cc)])
    policy, why = devices.choose_precision("auto")
    assert policy == expected and f"{cc[0]}.{cc[1]}" in why


def read_log(run):
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_killed_run_resumes_instead_of_restarting(tmp_path, scenes_dataset):
    run = str(tmp_path / "run")
    args = ["--preset", "demo", "--data", scenes_dataset, "--run-dir", run, "--epochs", "3",
            "--steps-per-epoch", "8", "--batch-size", "4", "--save-every", "2",
            "--precision", "float32"]
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "model_train.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = os.path.join(run, "state", "state.json")
    state = wait_for_state(run, [proc])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state and state["epoch"] >= 1 and not state.get("finished"), state
    rows_before = read_log(run)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout
    rows = read_log(run)
    # Epochs continue from where the kill left them: no epoch is logged twice.
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert len(rows_before) >= 1
    with open(state_path, encoding="utf-8") as f:
        final = json.load(f)
    assert final["finished"] and final["global_step"] == 3 * 8


def test_mirrored_over_two_cpus_matches_one_device(tmp_path, scenes_dataset, one_device_losses):
    # A subprocess: the logical CPUs must be set up before TensorFlow starts.
    two = run_script("model_train.py", *ONE_DEVICE_ARGS, "--data", scenes_dataset,
                     "--run-dir", str(tmp_path / "two"), "--logical-cpus", "2")
    assert two.returncode == 0, two.stderr[-2000:]
    assert "mirrored over 2 CPUs" in two.stdout
    a = one_device_losses
    b = [float(r["ab_loss"]) for r in read_log(str(tmp_path / "two"))]
    # Same data, same initial weights, same global batch; batch-norm statistics
    # are per replica (4 images instead of 8), so the runs drift apart as they go:
    # measured 4% apart after the first epoch, 26% after the second (0.0189 and
    # 0.0238; 6% and 11% on an earlier machine and TensorFlow build). The first
    # epoch is held close; after that both must still be learning.
    np.testing.assert_allclose(a[0], b[0], rtol=0.1)
    assert a[1] < 0.8 * a[0] and b[1] < 0.9 * b[0], (a, b)


def test_step_decay_schedule_halves_the_rate_every_n_epochs():
    cfg = get_config("varga")  # SGD 8e-2, halved every 300 epochs
    rate = model_train.learning_rate(cfg, steps_per_epoch=10)
    assert float(rate(0)) == pytest.approx(8e-2)
    assert float(rate(2999)) == pytest.approx(8e-2)
    assert float(rate(3000)) == pytest.approx(4e-2)
    assert float(rate(6000)) == pytest.approx(2e-2)
    optimizer = model_train.make_optimizer(cfg, steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert model_train.learning_rate(get_config("demo"), steps_per_epoch=10) == 2e-3
    adam = model_train.make_optimizer(get_config("demo", train={"lr_decay_epochs": 1}), 10)
    assert float(adam.learning_rate) == pytest.approx(2e-3)
    adam.iterations.assign(10)
    assert float(adam.learning_rate) == pytest.approx(1e-3)  # Adam follows the schedule


def test_init_from_copies_a_models_weights_and_refuses_another_network(tmp_path, short_run,
                                                                         scenes_dataset):
    result = short_run.result
    trained = keras.saving.load_model(result["model"], compile=False)
    run = str(tmp_path / "ft")
    cfg = tiny_cfg(steps_per_epoch=1, learning_rate=1e-9, init_from=result["model"])
    done = model_train.train(cfg, scenes_dataset, run, progress=False)
    tuned = keras.saving.load_model(done["model"], compile=False)
    # One step at a negligible rate: the fine-tuned run starts from the trained weights.
    ref = trained.get_layer("fusion").get_weights()[0]
    np.testing.assert_allclose(tuned.get_layer("fusion").get_weights()[0], ref, atol=1e-6)
    other = run_cli("--preset", "demo", "--width", "0.25", "--data", scenes_dataset,
                    "--run-dir", str(tmp_path / "other"), "--init-from", result["model"])
    assert other.returncode == 2 and "another network, width or output" in other.stderr
    assert other.stderr.strip().splitlines()[-1].startswith("model_train.py: error:")


def test_damaged_run_files_and_bad_numbers_are_one_line_usage_errors(tmp_path, scenes_dataset):
    args = ["--preset", "demo", "--data", scenes_dataset]
    for flag in (["--batch-size", "0"], ["--batch-size", "-4"], ["--epochs", "0"],
                 ["--learning-rate", "0"]):
        proc = run_cli(*args, "--run-dir", str(tmp_path / "new"), *flag)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert not (tmp_path / "new").exists()  # nothing written, nothing to trip a rerun
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "state" / "state.json").write_text('{"epoch": 1, "step_in')  # cut by a full disk
    proc = run_cli(*args, "--run-dir", str(run), "--precision", "float32")
    assert proc.returncode == 2 and "state.json is damaged" in proc.stderr
    assert "Traceback" not in proc.stderr
    (run / "config.json").write_text("{")
    proc = run_cli(*args, "--run-dir", str(run))
    assert proc.returncode == 2 and "config.json" in proc.stderr
    bad_data = tmp_path / "data"
    bad_data.mkdir()
    (bad_data / "dataset.json").write_text('{"format": "something else"}')
    proc = run_cli("--preset", "demo", "--data", str(bad_data), "--run-dir", str(tmp_path / "r3"))
    assert proc.returncode == 2 and "not a readable dataset summary" in proc.stderr


def test_a_damaged_shard_stops_training_with_one_line_and_verify_names_it(tmp_path):
    data = build_scenes(tmp_path / "data", 24, 0.25)
    assert run_main(read_input.main, [data, "--verify"]).returncode == 0
    shard = next(n for n in sorted(os.listdir(data)) if n.startswith("train-"))
    raw = bytearray((tmp_path / "data" / shard).read_bytes())
    raw[200:210] = bytes(10)  # a few bytes of the first record's image zeroed
    (tmp_path / "data" / shard).write_bytes(bytes(raw))
    check = run_main(read_input.main, [data, "--verify"])
    assert check.returncode == 1 and shard in check.stderr and "rerun" in check.stderr
    proc = run_cli("--preset", "demo", "--data", data, "--run-dir", str(tmp_path / "run"),
                   "--batch-size", "4", "--steps-per-epoch", "2", "--epochs", "1",
                   "--precision", "float32")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--verify" in proc.stderr
    # TensorFlow's own graph names ({{function_node ...}}) stay out of both lines.
    assert "function_node" not in proc.stderr + check.stderr


def test_a_run_goes_on_under_another_precision_with_its_optimizer_state(tmp_path,
                                                                        scenes_dataset):
    """A run started in bf16 goes on in float32 (a CPU without bf16), then in
    mixed_float16 (whose LossScaleOptimizer Keras would load nothing into), then
    back in bf16: each resume carries the step count and Adam's moments over."""
    run = tmp_path / "run"
    steps = 2
    seen = []
    for epoch, policy in enumerate(["mixed_bfloat16", "float32", "mixed_float16",
                                    "mixed_bfloat16"], start=1):
        try:
            proc = run_main(model_train.main, [
                "--preset", "demo", "--data", scenes_dataset, "--run-dir", run,
                "--epochs", epoch, "--steps-per-epoch", steps, "--batch-size", 4,
                "--precision", policy])
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(run / "state" / "state.json", encoding="utf-8") as f:
            state = json.load(f)
        seen.append(state["global_step"])
        with open(run / "config.json", encoding="utf-8") as f:
            assert json.load(f)["train"]["precision"] == policy
        if epoch > 1:
            assert "its state carries over" in proc.stdout, proc.stdout
        # The optimizer's own step count: lost, it would start again from 0.
        weights = TrainingState(str(run)).load()["weights"]
        import h5py
        with h5py.File(run / "state" / weights, "r") as f:
            group = f["optimizer/inner_optimizer/vars" if policy == "mixed_float16"
                      else "optimizer/vars"]
            assert int(group["0"][()]) == epoch * steps
    assert seen == [steps, 2 * steps, 3 * steps, 4 * steps]
