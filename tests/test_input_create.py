import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import matplotlib
import numpy as np
import pytest
from conftest import ROOT, colourful_image, run_main, write_photos

import input_create
from colorization import colorspace, example_codec, image_io
from colorization.example_codec import decode_lab8
from colorization.image_io import load_image, resize_short_side_and_center_crop


def records(path):
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(path):
        ex = tf.train.Example.FromString(raw.numpy())
        f = ex.features.feature
        out.append({"lab8": decode_lab8(f["image/encoded"].bytes_list.value[0]),
                    "label": f["image/class/label"].int64_list.value[0],
                    "source": f["image/source"].bytes_list.value[0].decode("utf-8",
                                                                           "surrogateescape")})
    return out


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def all_records(out):
    return [r for p in sorted(glob.glob(os.path.join(out, "*-of-*.tfrecord"))) for r in records(p)]


def run_cli(*args):
    """input_create.py's main in this process (conftest.run_main); the kill test and
    the smoke test run it as a subprocess."""
    return run_main(input_create.main, args)


def test_folder_tree_gives_one_class_per_subfolder(tmp_path):
    rng = np.random.default_rng(0)
    write_photos(tmp_path / "src" / "beach", 5, rng)
    write_photos(tmp_path / "src" / "forest", 7, rng)
    summary = input_create.main(["--images", str(tmp_path / "src"), "--out", str(tmp_path / "d"),
                                 "--workers", "1", "--val-fraction", "0.3"])
    assert summary == 0
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["class_names"] == ["beach", "forest"]
    assert meta["splits"]["train"]["count"] + meta["splits"]["val"]["count"] == 12
    assert meta["splits"]["val"]["count"] >= 1
    recs = all_records(str(tmp_path / "d"))
    assert sorted(r["source"].split(os.sep)[0] for r in recs) == ["beach"] * 5 + ["forest"] * 7
    for r in recs:
        assert r["label"] == (0 if r["source"].startswith("beach") else 1)
        assert r["lab8"].shape == (256, 256, 3) and r["lab8"].dtype == np.uint8
    hist = np.asarray(meta["ab_histogram"]["counts"])
    assert hist.sum() == meta["splits"]["train"]["count"] * 256 * 256


def test_list_file_layout(tmp_path):
    rng = np.random.default_rng(1)
    paths = write_photos(tmp_path / "src" / "a" / "abbey", 3, rng)
    paths += write_photos(tmp_path / "src" / "b" / "bar", 3, rng)
    lines = [f"/{os.path.relpath(p, tmp_path / 'src')} {0 if 'abbey' in p else 2}" for p in paths]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    assert input_create.main(["--images", str(tmp_path / "src"), "--labels",
                              str(tmp_path / "list.txt"), "--out", str(tmp_path / "d"),
                              "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["num_classes"] == 3
    assert meta["class_names"][0] == os.path.join("a", "abbey")
    labels = sorted(r["label"] for r in all_records(str(tmp_path / "d")))
    assert labels == [0, 0, 0, 2, 2, 2]


def test_flat_folder_has_no_labels(tmp_path):
    write_photos(tmp_path / "src", 4, np.random.default_rng(2))
    assert input_create.main(["--images", str(tmp_path / "src"), "--out", str(tmp_path / "d"),
                              "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["num_classes"] == 0 and meta["class_names"] == []
    assert [r["label"] for r in all_records(str(tmp_path / "d"))] == [-1] * 4


def test_a_source_named_in_latin1_bytes_is_built_with_the_rest(tmp_path):
    """A file name that is not UTF-8 (Latin-1 bytes) once aborted the whole build
    with a UnicodeEncodeError; it is built like any other, its name kept as bytes."""
    src = tmp_path / "src"
    write_photos(src, 3, np.random.default_rng(5))
    _, jpg = cv2.imencode(".jpg", colourful_image(np.random.default_rng(6)))
    with open(os.path.join(os.fsencode(src), b"caf\xe9.jpg"), "wb") as f:
        f.write(jpg.tobytes())
    code = input_create.main(["--images", str(src), "--out", str(tmp_path / "d"),
                              "--workers", "1"])
    assert code == 0
    sources = sorted(r["source"] for r in all_records(str(tmp_path / "d")))
    assert len(sources) == 4 and os.fsdecode(b"caf\xe9.jpg") in sources


def _bad_and_odd_sources(folder, rng):
    """Writes every awkward source the builder must handle; returns expected outcomes."""
    from PIL import Image

    folder.mkdir(parents=True)
    good = colourful_image(rng)
    (folder / "zero.jpg").write_bytes(b"")
    _, jpg = cv2.imencode(".jpg", good)
    (folder / "truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    (folder / "cut_eoi.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2] + b"\xff\xd9")
    (folder / "text.jpg").write_text("this is not a picture\n")
    cv2.imwrite(str(folder / "tiny.png"), good[:1, :1])
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(good, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "nearly_gray.png"),
                np.repeat(cv2.cvtColor(good, cv2.COLOR_BGR2GRAY)[..., None], 3, 2) + [0, 0, 1])
    (folder / "folder.jpg").mkdir()
    (folder / "locked.jpg").write_bytes(jpg.tobytes())
    os.chmod(folder / "locked.jpg", 0)
    cv2.imwrite(str(folder / "deep16.png"), good.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([good, np.full(good.shape[:2], 90, np.uint8)]))
    Image.fromarray(good[..., ::-1]).convert("CMYK").save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "fine.jpg"), good)
    skipped = {"zero.jpg": "empty file", "truncated.jpg": "truncated", "cut_eoi.jpg": "truncated",
               "text.jpg": "not a readable",
               "tiny.png": "too small", "gray.png": "grayscale", "nearly_gray.png": "near-gray",
               "folder.jpg": "directory", "locked.jpg": "permission denied"}
    written = {"deep16.png", "alpha.png", "cmyk.jpg", "fine.jpg"}
    return skipped, written


def test_bad_sources_are_skipped_with_reasons(tmp_path, monkeypatch, capsys):
    skipped, written = _bad_and_odd_sources(tmp_path / "src", np.random.default_rng(3))
    if os.geteuid() == 0:  # root reads mode-000 files; make the read fail as for a user
        real_open = open
        locked = str(tmp_path / "src" / "locked.jpg")

        def guarded_open(path, *args, **kwargs):
            if str(path) == locked:
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr(image_io, "open", guarded_open, raising=False)
    assert input_create.main(["--images", str(tmp_path / "src"), "--out", str(tmp_path / "d"),
                              "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    reasons = {s["source"]: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == set(skipped)
    for name, words in skipped.items():
        assert words in reasons[name], (name, reasons[name])
    assert {r["source"] for r in all_records(str(tmp_path / "d"))} == written
    out = capsys.readouterr().out
    assert f"skipped {len(skipped)}" in out and "wrote" in out


def test_sixteen_bit_source_keeps_its_colours(tmp_path):
    good = colourful_image(np.random.default_rng(4))
    cv2.imwrite(str(tmp_path / "a16.png"), good.astype(np.uint16) * 257)
    rgb16, _ = load_image(str(tmp_path / "a16.png"))
    np.testing.assert_allclose(rgb16, good[..., ::-1] / 255.0, atol=1e-6)


@pytest.mark.parametrize("args, words", [
    (["--images", "/nonexistent/photos"], "no such folder"),
    (["--images", "EMPTY"], "has no files"),
])
def test_missing_or_empty_source_is_a_usage_error(tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    result = run_cli(*args, "--out", str(tmp_path / "d"))
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_round_trip_of_a_real_photo_is_above_38_db(tmp_path):
    photo = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    os.makedirs(tmp_path / "src")
    with open(photo, "rb") as f:
        (tmp_path / "src" / "hopper.jpg").write_bytes(f.read())
    assert input_create.main(["--images", str(tmp_path / "src"), "--out", str(tmp_path / "d"),
                              "--workers", "1", "--val-fraction", "0"]) == 0
    (rec,) = all_records(str(tmp_path / "d"))
    decoded = colorspace.lab8_to_rgb(rec["lab8"]) * 255.0
    reference = resize_short_side_and_center_crop(load_image(photo)[0], 256) * 255.0
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((decoded - reference) ** 2))
    assert psnr >= 38.0, psnr


def _digest(out):
    return {os.path.basename(p): hashlib.sha1(open(p, "rb").read()).hexdigest()
            for p in glob.glob(os.path.join(out, "*.tfrecord"))}


def test_synthetic_build_is_deterministic_and_split_across_tasks(tmp_path, scenes_dataset):
    sources, names, kind = input_create.synthetic_sources(96, seed=0)
    out = str(tmp_path / "tasks")
    for task in (1, 0):  # out of order: the last task to finish writes dataset.json
        result = input_create.build(out, sources, names, kind, val_fraction=0.2, shards=3,
                                    workers=1, num_tasks=2, task_index=task, progress=False)
        assert (result is None) == (task == 1)
    meta = load_json(os.path.join(out, "dataset.json"))
    single = load_json(os.path.join(scenes_dataset, "dataset.json"))
    assert meta["splits"]["train"]["count"] + meta["splits"]["val"]["count"] == 96
    assert meta["splits"]["val"]["count"] == single["splits"]["val"]["count"]
    assert meta["ab_histogram"] == single["ab_histogram"]
    assert meta["class_names"] == ["countryside_day", "countryside_sunset", "coast_day",
                                   "coast_sunset"]
    a = sorted((r["source"], r["lab8"].tobytes()) for r in all_records(out))
    b = sorted((r["source"], r["lab8"].tobytes()) for r in all_records(scenes_dataset))
    assert a == b


def test_worker_pool_writes_what_one_process_writes(tmp_path):
    rng = np.random.default_rng(5)
    write_photos(tmp_path / "src", 12, rng)
    sources, names, kind = input_create.folder_sources(str(tmp_path / "src"), flat=True)
    outs = {}
    for workers in (1, 2):
        outs[workers] = str(tmp_path / f"w{workers}")
        assert input_create.build(outs[workers], sources, names, kind, val_fraction=0.2,
                                  workers=workers, progress=False) is not None
    assert _digest(outs[1]) == _digest(outs[2]) and len(_digest(outs[1])) == 2


def test_worker_processes_get_single_threaded_blas(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with input_create._single_threaded_children():
        assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ


def test_a_worker_with_many_photos_ahead_builds_the_colour_table_at_once(monkeypatch):
    monkeypatch.setattr(colorspace, "_table", None)
    input_create._init_worker(False)
    assert colorspace._table is None
    input_create._init_worker(True)
    assert colorspace._table is not None and colorspace._table.size == 1 << 24


def test_split_is_a_stable_hash_of_the_path():
    assert input_create.split_of("a/b.jpg", 0.5) == input_create.split_of("a/b.jpg", 0.5)
    fractions = [input_create.split_of(f"x/{i}.jpg", 0.1) == "val" for i in range(5000)]
    assert 0.08 < np.mean(fractions) < 0.12


def test_killed_build_leaves_no_incomplete_shard_and_rerun_completes(tmp_path):
    out = str(tmp_path / "killed")
    args = ["--synthetic", "160", "--out", out, "--shards", "8", "--workers", "1",
            "--val-fraction", "0.1"]
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "input_create.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not glob.glob(os.path.join(out, "train-*.tfrecord")):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = glob.glob(os.path.join(out, "*-of-*.tfrecord"))
    assert finished, "the build was killed before any shard was complete"
    assert not os.path.exists(os.path.join(out, "dataset.json"))
    assert len(finished) < 9, "the build finished before it was killed"
    for path in finished:  # every file with a shard's name is whole
        part = load_json(os.path.join(out, ".parts", os.path.basename(path) + ".json"))
        assert len(records(path)) == part["count"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    meta = load_json(os.path.join(out, "dataset.json"))
    assert meta["splits"]["train"]["count"] + meta["splits"]["val"]["count"] == 160
    clean = str(tmp_path / "clean")
    assert run_cli(*[out if a == out else a for a in args[:3]], clean, *args[4:]).returncode == 0
    assert _digest(out) == _digest(clean)
    assert not [n for n in os.listdir(out) if "partial" in n]


def test_rerun_of_a_finished_build_says_so(scenes_dataset):
    result = run_cli("--synthetic", "96", "--out", scenes_dataset, "--val-fraction", "0.2")
    assert result.returncode == 0 and "already complete" in result.stdout
    # With other settings it is not "complete": it would be another build.
    result = run_cli("--synthetic", "96", "--out", scenes_dataset)
    assert result.returncode == 2 and "val_fraction" in result.stderr


def test_ab_histogram_and_chroma_match_direct_formulas():
    rng = np.random.default_rng(3)
    lab8 = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ab = lab8[..., 1:].reshape(-1, 2).astype(np.float64) - 128.0
    # Direct: the nearest centre of the grid -130, -120, ..., 130, per axis.
    idx = np.clip(np.rint((ab + 130.0) / 10.0), 0, 26).astype(int)
    direct = np.zeros((27, 27), int)
    np.add.at(direct, (idx[:, 0], idx[:, 1]), 1)
    assert np.array_equal(example_codec.ab_histogram(lab8), direct)
    assert example_codec.mean_chroma(lab8) == pytest.approx(np.hypot(ab[:, 0], ab[:, 1]).mean())
    # A hand case: one pixel a = b = 0 (bin 13, 13) and one a = 30, b = 40 (chroma 50).
    two = np.array([[[50, 128, 128], [50, 158, 168]]], np.uint8)
    hist = example_codec.ab_histogram(two)
    assert hist[13, 13] == 1 and hist[16, 17] == 1 and hist.sum() == 2
    assert example_codec.mean_chroma(two) == pytest.approx(25.0)


def test_crops_per_image_makes_distinct_crops_of_large_photos_split_by_photo(tmp_path):
    rng = np.random.default_rng(7)
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "large.png"), colourful_image(rng, 768, 1024))
    cv2.imwrite(str(src / "small.png"), colourful_image(rng, 200, 300))
    for i in range(6):
        cv2.imwrite(str(src / f"mid{i}.png"), colourful_image(rng, 520, 600))
    args = ["--images", str(src), "--flat", "--workers", "1", "--val-fraction", "0.3",
            "--crops-per-image", "4", "--size", "128", "--min-side", "64"]
    assert input_create.main([*args, "--out", str(tmp_path / "a")]) == 0
    got = all_records(str(tmp_path / "a"))
    by_photo = {}
    for r in got:
        photo = r["source"].split("#crop")[0]
        by_photo.setdefault(photo, []).append(r)
    # 768 px short side over 128 px stored: 36 squares, so all 4 crops; 200 px: 2.
    assert len(by_photo["large.png"]) == 4 and len(by_photo["small.png"]) == 2
    crops = [r["lab8"] for r in by_photo["large.png"]]
    assert all(not np.array_equal(a, b) for i, a in enumerate(crops) for b in crops[i + 1:])
    meta = load_json(tmp_path / "a" / "dataset.json")
    assert meta["crops_not_made"] == 2 and meta["crops"]["per_image"] == 4
    # Every crop of a photo on one side of the split.
    val = {r["source"] for r in records_of_split(str(tmp_path / "a"), "val")}
    for photo, rs in by_photo.items():
        sides = {r["source"] in val for r in rs}
        assert len(sides) == 1, photo
    assert val and len(val) < len(got)
    # Crop 0 is the whole photo, as without crops.
    assert input_create.main(["--images", str(src), "--flat", "--workers", "1", "--val-fraction",
                              "0.3", "--size", "128", "--min-side", "64",
                              "--out", str(tmp_path / "whole")]) == 0
    whole = {r["source"]: r["lab8"] for r in all_records(str(tmp_path / "whole"))}
    first = next(r for r in by_photo["large.png"] if r["source"].endswith("#crop00"))
    assert np.array_equal(first["lab8"], whole["large.png"])
    # Deterministic: another build with the same seed stores the same bytes.
    assert input_create.main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in os.listdir(tmp_path / "a"):
        if name.endswith(".tfrecord"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def records_of_split(out, split):
    return [r for p in sorted(glob.glob(os.path.join(out, f"{split}-*.tfrecord")))
            for r in records(p)]


@pytest.mark.parametrize("flag, value", [("--size", "0"), ("--size", "-3"), ("--workers", "0"),
                                         ("--min-side", "0"), ("--shards", "0"),
                                         ("--num-tasks", "0"), ("--min-chroma", "-1")])
def test_numeric_arguments_are_checked_before_anything_is_written(tmp_path, flag, value):
    out = tmp_path / "d"
    result = run_cli("--synthetic", "4", "--out", str(out), flag, value)
    assert result.returncode == 2 and flag in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_resumed_build_refuses_other_classes_or_sources(tmp_path):
    rng = np.random.default_rng(21)
    write_photos(tmp_path / "src" / "beach", 3, rng)
    write_photos(tmp_path / "src" / "forest", 3, rng)
    out = str(tmp_path / "d")
    args = ["--images", str(tmp_path / "src"), "--out", out, "--workers", "1"]
    assert run_cli(*args).returncode == 0
    assert "already complete" in run_cli(*args).stdout
    os.rename(tmp_path / "src" / "forest", tmp_path / "src" / "woods")  # a class renamed
    result = run_cli(*args)
    assert result.returncode == 2 and "class_names" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli(*args, "--overwrite").returncode == 0
    assert load_json(os.path.join(out, "dataset.json"))["class_names"] == ["beach", "woods"]


def test_overwrite_removes_only_what_the_builder_wrote(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("--synthetic", "4", "--out", str(out))
    assert result.returncode == 2 and "not empty" in result.stderr  # a foreign folder
    (out / "mine.tfrecord").write_text("also mine")
    (out / "dataset.json").write_text('{"something": "else"}')
    assert run_cli("--synthetic", "4", "--out", str(out), "--overwrite").returncode == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "mine.tfrecord").read_text() == "also mine"
    assert load_json(out / "dataset.json")["format"] == "lab8-png-tfrecord"


@pytest.mark.parametrize("line, words", [("../outside/secret.jpg 1", "outside --images"),
                                         ("a.jpg 99999999", "over 99999")])
def test_label_lists_cannot_escape_the_folder_or_explode(tmp_path, line, words):
    (tmp_path / "src").mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text(f"{line}\n", encoding="utf-8")
    result = run_cli("--images", str(tmp_path / "src"), "--labels", str(listing),
                     "--out", str(tmp_path / "d"))
    assert result.returncode == 2 and words in result.stderr
    listing.write_bytes(b"caf\xe9.jpg 1\n")  # Latin-1, not UTF-8
    result = run_cli("--images", str(tmp_path / "src"), "--labels", str(listing),
                     "--out", str(tmp_path / "d"))
    assert result.returncode == 2 and "not UTF-8" in result.stderr


def test_a_bomb_among_the_sources_is_skipped_without_decoding(tmp_path):
    import bombs

    rng = np.random.default_rng(22)
    write_photos(tmp_path / "src", 3, rng)
    (tmp_path / "src" / "bomb.tif").write_bytes(bombs.tiff_bomb())  # 30000 x 30000
    assert run_cli("--images", str(tmp_path / "src"), "--flat", "--workers", "1",
                   "--out", str(tmp_path / "d")).returncode == 0
    meta = load_json(tmp_path / "d" / "dataset.json")
    reasons = {s["source"]: s["reason"] for s in meta["skipped"]}
    assert "over the limit" in reasons["bomb.tif"]
    assert meta["splits"]["train"]["count"] + meta["splits"]["val"]["count"] == 3
