"""TensorFlow's start-up lines stay off a user's terminal; --verbose brings them back
(colorization/quiet.py)."""

import importlib
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, run_main

from colorization import quiet

# absl's and TensorFlow's C++ log lines: "I0000 00:00:1795... 123 port.cc:153] ...".
CPP_LOG = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]")


def tensorflow_lines(stderr):
    return [ln for ln in stderr.splitlines()
            if CPP_LOG.match(ln) or "absl::InitializeLog" in ln]


def run_build_model(*extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.VERBOSE_ENV)}
    return subprocess.run([sys.executable, os.path.join(ROOT, "build_model.py"), "--preset",
                           "demo", *extra], capture_output=True, text=True, env=env, check=False,
                          timeout=300)


def test_a_script_prints_only_its_own_lines_unless_verbose():
    quiet_run = run_build_model()
    assert quiet_run.returncode == 0, quiet_run.stderr[-2000:]
    assert tensorflow_lines(quiet_run.stderr) == [], quiet_run.stderr
    assert "parameters" in quiet_run.stdout
    # The same script with --verbose: TensorFlow 2.21 prints its start-up lines
    # (absl's, oneDNN's, cudart's on a machine with no GPU), so the quiet run above
    # had something to hide.
    loud = run_build_model("--verbose")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert tensorflow_lines(loud.stderr), loud.stderr
    assert loud.stdout == quiet_run.stdout


def test_stderr_silenced_hides_writes_to_the_descriptor_and_restores_it(capfd):
    os.write(2, b"before\n")
    with quiet.stderr_silenced():
        os.write(2, b"from C++\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_verbose_is_asked_by_the_flag_or_the_environment(monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    assert not quiet.verbose_requested(["--preset", "demo"])
    assert quiet.verbose_requested(["x.jpg", "--verbose"])
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    assert quiet.verbose_requested([])
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")
    assert not quiet.verbose_requested([])


@pytest.mark.parametrize("script", ["bench", "build_model", "convert_model", "evaluate",
                                    "input_create", "model_train", "model_transform",
                                    "read_input"])
def test_every_script_takes_verbose(script):
    module = importlib.import_module(script)
    proc = run_main(module.main, ["--help"])
    assert proc.returncode == 0 and "--verbose" in proc.stdout, (script, proc.stdout[-500:])
