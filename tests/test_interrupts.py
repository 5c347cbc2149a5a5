"""Ctrl-C and SIGTERM end the scripts with one line and the shell's exit code,
leaving no temporary behind (colorization.interrupts)."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from colorization import interrupts


@pytest.fixture
def sigterm_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


@pytest.mark.usefixtures("sigterm_restored")
def test_ctrl_c_and_sigterm_end_in_one_line_with_the_shells_exit_codes(capsys):
    def pressed_ctrl_c():
        raise KeyboardInterrupt

    def terminated():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises long before this ends
        return 0

    assert interrupts.run(pressed_ctrl_c, "x.py", "what comes next") == 130
    assert capsys.readouterr().err == "x.py: interrupted; what comes next\n"
    start = time.time()
    assert interrupts.run(terminated, "y.py", "the rest") == 143
    assert time.time() - start < 5
    assert capsys.readouterr().err == "y.py: interrupted; the rest\n"
    assert interrupts.run(lambda: 3, "z.py") == 3

    def swallowed():  # a library that catches the interrupt and goes on
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        except KeyboardInterrupt:
            pass
        return 0

    assert interrupts.run(swallowed, "w.py", "stopped") == 143
    assert capsys.readouterr().err == "w.py: interrupted; stopped\n"


def interrupted(args, ready, sig, timeout=300):
    """Starts a script in its own process group, sends `sig` to the whole group (as a
    terminal's Ctrl-C reaches a process and its workers) once ready() holds, and
    returns (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the script ended before it could be interrupted"
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_in_a_dataset_build_with_workers_is_one_line_and_leaves_no_temporary(
        tmp_path):
    out = str(tmp_path / "built")
    code, err = interrupted(
        [os.path.join(ROOT, "input_create.py"), "--synthetic", "400", "--out", out,
         "--shards", "8", "--workers", "2", "--val-fraction", "0.1"],
        lambda: glob.glob(os.path.join(out, "train-*.tfrecord")), signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("input_create.py: interrupted; the "
                                                   "finished shards are kept"), err
    assert not [n for n in os.listdir(out) if "partial" in n]
    assert not os.path.exists(os.path.join(out, "dataset.json"))


def test_sigterm_in_an_export_is_one_line_and_leaves_nothing_at_out(tmp_path):
    import build_model
    from config import get_config

    build_model.set_precision("float32")
    path = str(tmp_path / "model.keras")
    build_model.build_model(get_config("demo")).save(path)
    out = str(tmp_path / "m.tflite")
    started = time.time()
    code, err = interrupted([os.path.join(ROOT, "export_model.py"), path, "--format",
                             "tflite", "--out", out], lambda: time.time() > started + 6,
                            signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == ("export_model.py: interrupted; nothing was "
                                            "written at --out"), err
    assert os.listdir(tmp_path) == ["model.keras"]
