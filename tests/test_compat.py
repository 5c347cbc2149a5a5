"""Runs and models written before the systems registry keep working: the fixture in
tests/fixtures/run_before_registry/ was written by the code of commit 3758b91 (the
demo preset at width 1/16 with the old `head: classification`, 2 steps of batch 4
on 24 embedded scenes of seed 0, then finished); see its README."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import ROOT, build_scenes

import model_train
from colorization import inference, systems
from config import from_dict

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "run_before_registry")


def read_state(run):
    with open(os.path.join(run, "state", "state.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def old_data(tmp_path_factory):
    return build_scenes(tmp_path_factory.mktemp("old_data"), 24, 0.25)


def test_old_config_maps_to_network_and_output():
    with open(os.path.join(FIXTURE, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["model"]["head"] == "classification" and "network" not in saved["model"]
    saved["data"].pop("path")
    saved.pop("class_names")
    cfg = from_dict(saved)
    assert (cfg.model.network, cfg.model.output) == ("iizuka", "ab_bins")
    network, output = systems.resolve(cfg)
    assert network.name == "iizuka" and output.name == "ab_bins"
    for arch, head, histogram, expected in [("larsson", "regression", "lab", "lab_hist"),
                                            ("larsson", "regression", "hue_chroma",
                                             "hue_chroma_hist"),
                                            ("varga", "regression", "hue_chroma", "uv"),
                                            ("zhang", "classification", "hue_chroma", "ab_bins"),
                                            ("iizuka", "regression", "hue_chroma", "ab")]:
        old = {"model": {"arch": arch, "head": head, "histogram": histogram}}
        assert from_dict(old).model.output == expected
        assert from_dict(old).model.network == arch


def test_old_keras_file_loads_safely_and_colorizes_at_any_size():
    model = inference.load_model(os.path.join(FIXTURE, "model.keras"))
    network, output = systems.of_model(model)
    assert (network.name, output.name) == ("iizuka", "ab_bins")
    x = np.random.default_rng(0).random((1, 61, 83, 1)).astype(np.float32)
    ab, probs = inference.Colorizer(model).predict(x)
    assert ab.shape == (1, 31, 42, 2) and probs.shape == (1, 4)
    assert np.all((ab >= 0) & (ab <= 1))


def test_old_run_directory_resumes_with_more_epochs(old_data, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(FIXTURE, run)
    before = read_state(run)
    assert before["finished"] and before["epoch"] == 1
    assert model_train.main(["--run-dir", run, "--data", old_data]) == 0  # says it finished
    assert model_train.main(["--run-dir", run, "--data", old_data, "--epochs", "2"]) == 0
    after = read_state(run)
    assert after["finished"] and after["epoch"] == 2
    assert after["global_step"] == before["global_step"] + 2  # went on, did not restart
    with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
        model = json.load(f)["model"]
    assert (model["network"], model["output"]) == ("iizuka", "ab_bins")


def test_resume_refuses_a_flag_that_would_change_the_run(old_data, tmp_path, capsys):
    run = str(tmp_path / "run")
    shutil.copytree(FIXTURE, run)
    code = model_train.main(["--run-dir", run, "--data", old_data, "--epochs", "3",
                             "--batch-size", "8", "--output", "ab"])
    err = capsys.readouterr().err
    assert code == 2 and "--batch-size 8 (the run has 4)" in err and "--output ab" in err
    assert err.count("\n") == 1  # one line, no traceback
    state = read_state(run)
    assert state["epoch"] == 1  # nothing trained
