"""evaluate.py: report files, baselines, ablation, and a trained model beating gray."""

import csv
import json
import os
import subprocess
import sys

from conftest import ROOT

import evaluate


def test_short_run_beats_gray_and_the_report_is_complete(tmp_path, short_run, scenes_dataset):
    _, result, _ = short_run
    out = str(tmp_path / "report")
    results, n = evaluate.evaluate(scenes_dataset, [result["model"]], out, ablate_global=True)
    model = "run/model.keras"
    gray, mean = results["gray (ab = 0)"], results["mean ab (train)"]
    trained = results[model]
    # Measured after these 48 steps: ab RMSE gray 38.5, model 35.7; AuC gray 74.9%,
    # model 77.6%.
    assert trained["ab_rmse"] < gray["ab_rmse"] - 1.0
    assert trained["auc"] > gray["auc"] + 1.0
    assert f"{model} (global features ablated)" in results
    for r in results.values():  # the sky of the embedded scenes is scored on its own
        assert "sky_ab_rmse" in r and "sky_auc" in r
    assert mean["ab_rmse"] < gray["ab_rmse"]  # the mean colour is a better constant than gray
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        assert json.load(f)["images"] == n
    with open(os.path.join(out, "per_image.csv"), encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == n * len(results)
    for name in ("auc_curves.png", "grid.png"):
        assert os.path.getsize(os.path.join(out, name)) > 10_000


def test_missing_model_or_data_is_a_usage_error(tmp_path, scenes_dataset):
    script = os.path.join(ROOT, "evaluate.py")
    for args in (["--data", scenes_dataset, "--model", str(tmp_path / "none.keras")],
                 ["--data", str(tmp_path / "nodata")]):
        proc = subprocess.run([sys.executable, script, *args, "--out", str(tmp_path / "r")],
                              check=False, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "evaluate.py: error:" in proc.stderr


def test_models_with_the_same_run_folder_name_get_distinct_names():
    names = evaluate.display_names(["/x/a/run/model.keras", "/x/b/run/model.keras",
                                    "/x/c/other/model.keras"])
    assert names == ["a/run/model.keras", "b/run/model.keras", "c/other/model.keras"]
    assert evaluate.display_names(["runs/demo/model.keras"]) == ["demo/model.keras"]
