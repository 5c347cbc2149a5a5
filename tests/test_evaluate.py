"""evaluate.py: report files, baselines, ablation, and a trained model beating gray."""

import csv
import json
import os

import cv2
import numpy as np
import pytest
from conftest import colourful_image, run_main, run_script

import evaluate


@pytest.fixture(scope="module")
def short_run_report(short_run, sky_scenes, tmp_path_factory):
    """evaluate.py's report of short_run's model, with its global features ablated, on
    the val split it was trained beside: (results, images, report folder)."""
    result = short_run.result
    out = str(tmp_path_factory.mktemp("report") / "report")
    results, n = evaluate.evaluate(sky_scenes, [result["model"]], out, ablate_global=True)
    return results, n, out


def test_short_run_beats_gray_and_the_report_is_complete(short_run_report):
    results, n, out = short_run_report
    model = "run/model.keras"
    gray, mean = results["gray (ab = 0)"], results["mean ab (train)"]
    trained = results[model]
    # Measured after these 60 steps: ab RMSE gray 37.1, model 18.8; AuC gray 75.7%,
    # model 89.9%.
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


def test_the_papers_claim_global_features_decide_the_sky(short_run_report):
    """Iizuka et al.'s central claim on the embedded scenes: the sky's colour (blue by
    day, orange at sunset, at the same luminance) needs the global features, so the
    model beats its own global-features ablation there by a wide margin."""
    results, n, _ = short_run_report
    assert n == 51  # sky_scenes' val split (input_create's split of 400 scenes)
    model = results["run/model.keras"]
    ablated = results["run/model.keras (global features ablated)"]
    # Measured (4 x 15 steps of batch 16, 51 val scenes): sky ab RMSE 17.8 against 32.2
    # ablated, sky AuC 89.8% against 81.1% (the same as 1 epoch of 60 steps).
    assert model["sky_ab_rmse"] < ablated["sky_ab_rmse"] - 7.0, (model, ablated)
    assert model["sky_auc"] > ablated["sky_auc"] + 5.0, (model, ablated)


def test_missing_model_or_data_is_a_usage_error(tmp_path, scenes_dataset):
    for args in (["--data", scenes_dataset, "--model", str(tmp_path / "none.keras")],
                 ["--data", str(tmp_path / "nodata")], ["--images", str(tmp_path / "nodir")]):
        proc = run_main(evaluate.main, [*args, "--out", str(tmp_path / "r")])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "evaluate.py: error:" in proc.stderr
    # The command line's smoke test: a subprocess.
    proc = run_script("evaluate.py", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--data" in proc.stderr and "Traceback" not in proc.stderr


def test_models_with_the_same_run_folder_name_get_distinct_names():
    names = evaluate.display_names(["/x/a/run/model.keras", "/x/b/run/model.keras",
                                    "/x/c/other/model.keras"])
    assert names == ["a/run/model.keras", "b/run/model.keras", "c/other/model.keras"]
    assert evaluate.display_names(["runs/demo/model.keras"]) == ["demo/model.keras"]


def test_a_folder_of_photos_is_scored_with_the_same_report(tmp_path, short_run, scenes_dataset):
    result = short_run.result
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(9)
    for i in range(3):
        cv2.imwrite(str(photos / f"p{i}.jpg"), colourful_image(rng, 240, 320))
    cv2.imwrite(str(photos / "gray.png"), np.full((100, 100, 3), 90, np.uint8))
    (photos / "junk.jpg").write_bytes(b"not a photo")
    (photos / "notes.txt").write_text("ignored")
    out = tmp_path / "report"
    proc = run_main(evaluate.main, ["--images", photos, "--model", result["model"],
                                    "--out", out, "--ablate-global"])
    assert proc.returncode == 0, proc.stderr
    skipped = [ln for ln in proc.stderr.splitlines() if "skipped" in ln]
    assert len(skipped) == 2 and any("gray.png" in ln for ln in skipped)
    assert any("junk.jpg" in ln for ln in skipped)
    with open(out / "metrics.json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["images"] == 3 and report["prior"] == "the evaluated photos"
    assert set(report["models"]) == {"gray (ab = 0)", "mean ab (train)", "run/model.keras",
                                     "run/model.keras (global features ablated)"}
    assert report["models"]["gray (ab = 0)"]["colourfulness"] == 0.0
    with open(out / "per_image.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["image"] for r in rows} == {"p0.jpg", "p1.jpg", "p2.jpg"}
    assert os.path.getsize(out / "grid.png") > 10_000
    # With --data, the training split's prior: the mean-ab baseline changes.
    with_prior = evaluate.evaluate(scenes_dataset, [], str(tmp_path / "r2"), images=str(photos))
    assert with_prior[0]["mean ab (train)"] != report["models"]["mean ab (train)"]


def test_out_that_is_a_file_and_a_bad_limit_are_usage_errors(tmp_path, scenes_dataset):
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    for args in (["--out", str(existing)], ["--out", str(tmp_path / "r"), "--limit", "0"]):
        proc = run_main(evaluate.main, ["--data", scenes_dataset, *args])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert existing.read_text() == "mine"


def test_full_size_scores_each_whole_photo_as_model_transform_colorizes_it(tmp_path,
                                                                             short_run):
    """--full-size: the photos at their own sizes (two shapes, one longer than the
    network's 512 px), gray's ab RMSE by hand over every pixel, and the model's
    colours those of model_transform.py's output file."""
    from conftest import run_transform

    from colorization import colorspace

    result = short_run.result
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(4)
    shapes = {"wide.png": (150, 700), "tall.png": (260, 190)}
    for name, (h, w) in shapes.items():
        cv2.imwrite(str(photos / name), colourful_image(rng, h, w))
    out = tmp_path / "report"
    proc = run_main(evaluate.main, ["--images", photos, "--model", result["model"],
                                    "--out", out, "--full-size"])
    assert proc.returncode == 0, proc.stderr
    assert "(full size)" in proc.stdout
    with open(out / "per_image.csv", encoding="utf-8") as f:
        rows = {(r["model"], r["image"]): r for r in csv.DictReader(f)}
    eval_set = evaluate.EvalSet.from_folder(str(photos), 224, 10, full_size=True)
    for i, name in enumerate(eval_set.sources):
        assert eval_set.lab8[i].shape[:2] == shapes[name]
        ab = eval_set.lab[i][..., 1:].astype(np.float64)
        by_hand = np.sqrt((ab ** 2).sum(-1).mean())
        assert float(rows[("gray (ab = 0)", name)]["ab_rmse"]) == pytest.approx(by_hand, 1e-4)
    predict = evaluate.full_size_predictor(result["model"], eval_set)
    predicted = next(iter(predict.values()))(eval_set.lab8)
    for i, name in enumerate(eval_set.sources):
        source = str(photos / name)
        proc = run_transform(source, "--model", result["model"], "--out",
                             tmp_path / f"out-{name}")
        assert proc.returncode == 0, proc.stderr
        written = cv2.imread(str(tmp_path / f"out-{name}"))[..., ::-1]
        lab = colorspace.rgb_to_lab(written.astype(np.float32) / 255.0)
        assert predicted[i].shape == lab.shape[:2] + (2,)
        # The output file is 8-bit RGB (its ab quantized, and out-of-gamut colours
        # clipped): the same colours within a few ab units on average.
        assert np.abs(lab[..., 1:] - predicted[i]).mean() < 3.0, name
    with pytest.raises(evaluate.EvalError, match="--full-size"):
        evaluate.evaluate(None, [], str(tmp_path / "r3"), images=str(photos), full_size=True,
                          ablate_global=True)
