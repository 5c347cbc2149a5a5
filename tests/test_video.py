"""Video: model_transform.py on clips (size, timing, L, audio, resume), the
stabilizer, and the temporal metrics of evaluate.py --video, on clips made here."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from clips import audio_samples, make_clip, scene_frame, video_frames
from conftest import ROOT, run_main, run_transform
from scipy.spatial.distance import jensenshannon

from colorization import colorspace, temporal, video_metrics
from colorization.inference import Colorizer, colorize_pixels, load_model, network_input
from colorization.video import ClipColorizer


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The demo network with its global features weighing a lot (untrained, so its
    colours are far from gray and change with the global features)."""
    import keras

    import build_model
    from config import get_config

    build_model.set_precision("float32")
    keras.utils.set_random_seed(7)
    model = build_model.build_model(get_config("demo"))
    fusion = model.get_layer("fusion")
    mid, glob, bias = fusion.get_weights()
    fusion.set_weights([mid * 8.0, glob * 60.0, bias])
    out = model.get_layer("ab")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * 30.0, bias])
    path = str(tmp_path_factory.mktemp("video_model") / "model.keras")
    model.save(path)
    return path


def lightness(rgb8):
    return colorspace.rgb8_to_l(rgb8)


# ---------------------------------------------------------------- metrics


def test_js_divergence_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, q = rng.random(256), rng.random(256)
        q[:40] = 0  # empty bins on one side
        assert temporal.js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)


def test_a_still_clip_has_zero_warping_error_and_zero_cdc():
    score = video_metrics.ClipScore()
    frame = scene_frame(3, 64, 48)
    for _ in range(5):
        score.add(frame, {"out": frame})
    r = score.result("out")
    assert r["e_warp"] == pytest.approx(0.0, abs=1e-9)
    assert r["cdc"] == pytest.approx(0.0, abs=1e-12)


def test_a_clip_whose_colour_alternates_has_the_known_cdc_and_flickers():
    """Two flat colours, every channel different, alternating: the frames one apart
    have disjoint histograms (JS = ln 2 per channel), those 2 and 4 apart equal ones,
    so CDC = (ln 2 + 0 + 0) / 3; the input is still, so all of the change is flicker:
    E_warp = |A - B|^2 over RGB in [0, 1]."""
    a, b = np.array([200, 40, 90], np.uint8), np.array([30, 180, 160], np.uint8)
    gray = np.full((40, 50), 120, np.uint8)
    score = video_metrics.ClipScore()
    for k in range(9):
        score.add(gray, {"out": np.broadcast_to(a if k % 2 else b, (40, 50, 3)).copy()})
    r = score.result("out")
    assert r["cdc_1"] == pytest.approx(np.log(2))
    assert r["cdc_2"] == pytest.approx(0.0, abs=1e-12)
    assert r["cdc_4"] == pytest.approx(0.0, abs=1e-12)
    assert r["cdc"] == pytest.approx(np.log(2) / 3)
    expected = float(np.sum(((a.astype(float) - b) / 255.0) ** 2))
    assert r["e_warp"] == pytest.approx(expected, rel=1e-5)


def test_warping_error_follows_the_motion_of_the_input():
    """A moving disc colorized consistently (the truth itself) scores near zero;
    the same frames with their colours shuffled per frame score far higher."""
    frames = [scene_frame(k, 96, 64) for k in range(8)]
    score = video_metrics.ClipScore()
    rng = np.random.default_rng(1)
    for f in frames:
        score.add(f, {"truth": f, "shuffled": f[..., rng.permutation(3)]})
    assert score.result("truth")["e_warp"] < 0.01 * score.result("shuffled")["e_warp"]


def test_the_masks_keep_a_translation_and_drop_an_occlusion():
    h, w = 40, 60
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 3.0
    back = -flow
    assert temporal.consistent(back, flow)[:, 5:-5].all()
    fore = flow.copy()
    fore[10:20, 20:30] = (-6.0, 0.0)  # a patch that does not come back: occluded
    mask = temporal.consistent(back, fore)
    assert not mask[12:18, 25:31].any() and mask[30:, 10:50].all()
    image = np.arange(h * w, dtype=np.float32).reshape(h, w)
    np.testing.assert_allclose(temporal.warp(image, flow)[:, :-3], image[:, 3:])


# ---------------------------------------------------------------- the stabilizer


def test_cuts_are_found_where_the_scene_changes():
    stab = temporal.Stabilizer()
    cuts = [k for k in range(30)
            if stab.is_cut(temporal.l8(colorspace.rgb8_to_l(
                scene_frame(k, 96, 64, second=k >= 17)) / 100.0))]
    assert cuts == [0, 17]


def test_stabilizing_removes_flicker_and_a_cut_takes_the_new_prediction():
    """Per-frame predictions of a moving scene with independent noise: the
    stabilized ab varies far less between frames where the scene is the same; at a
    cut the output is the prediction itself."""
    rng = np.random.default_rng(2)
    stab = temporal.Stabilizer()
    raw_change, stab_change, prev_raw, prev_out = [], [], None, None
    for k in range(20):
        frame = scene_frame(k % 3, 96, 64, second=k >= 14)  # a small back-and-forth
        l8 = temporal.l8(colorspace.rgb8_to_l(frame) / 100.0)
        ab = 0.5 + 0.05 * rng.standard_normal((64, 96, 2)).astype(np.float32)
        cut = stab.is_cut(l8)
        out = stab.step(l8, ab, cut)
        if cut and k:
            np.testing.assert_allclose(out, ab, atol=1e-6)
        elif prev_raw is not None and k < 14:
            raw_change.append(np.abs(ab - prev_raw).mean())
            stab_change.append(np.abs(out - prev_out).mean())
        prev_raw, prev_out = ab, out
    assert stab.cuts == 2
    assert np.mean(stab_change) < 0.5 * np.mean(raw_change)


def test_the_split_network_gives_the_whole_network_colours(model_path):
    """Global features computed by the split encoder and handed to the split
    decoder give what the whole any-size network gives."""
    model = load_model(model_path)
    colorizer = Colorizer(model, split_global=True)
    x = np.stack([network_input(scene_frame(k, 120, 88), 512) for k in (0, 9)])
    whole, _ = colorizer.predict(x)
    parts, _ = colorizer.predict(x, features=colorizer.global_features(x))
    np.testing.assert_allclose(parts, whole, atol=2e-5)
    _assert_split_differs(colorizer, x, whole)


def test_the_split_network_of_a_mixed_bfloat16_model_stabilizes_a_clip(tmp_path):
    """The policy auto picks on AVX-512 BF16, AMX and GPUs: the split and the
    stabilizer run on a model saved under mixed_bfloat16."""
    import keras

    import build_model
    from config import get_config

    try:
        build_model.set_precision("mixed_bfloat16")
        keras.utils.set_random_seed(5)
        model = build_model.build_model(get_config("demo"))
    finally:
        build_model.set_precision("float32")
    path = str(tmp_path / "bf16.keras")
    model.save(path)
    colorizer = Colorizer(load_model(path), split_global=True)
    x = np.stack([network_input(scene_frame(k, 96, 72), 512) for k in (0, 5)])
    whole, _ = colorizer.predict(x)
    parts, _ = colorizer.predict(x, features=colorizer.global_features(x))
    np.testing.assert_allclose(parts, whole, atol=2e-2)  # bfloat16's 8 bits of mantissa
    cc = ClipColorizer(colorizer, 512)
    out = [cc.abs([scene_frame(k, 96, 72)])[0]["stabilized"] for k in range(3)]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in out)


def _assert_split_differs(colorizer, x, whole):
    swapped, _ = colorizer.predict(x, features=colorizer.global_features(x)[::-1])
    assert np.abs(swapped - whole).max() > 0.01  # the features matter


# ---------------------------------------------------------------- model_transform.py


def test_a_clip_keeps_its_frames_timing_lightness_and_audio(tmp_path, model_path):
    src = tmp_path / "walk.mp4"
    frames = make_clip(src, frames=26, w=70, h=50, fps=12)  # odd sizes after /4
    proc = run_transform(src, "--model", model_path, "--segment-frames", 8)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dest = tmp_path / "walk_color.mp4"
    out = video_frames(dest)
    assert len(out) == len(frames) and out[0].shape == frames[0].shape
    import av

    with av.open(str(src)) as a, av.open(str(dest)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate
        ts_a = [f.pts * f.time_base for f in a.decode(video=0)]
        ts_b = [f.pts * f.time_base for f in b.decode(video=0)]
    assert ts_a == ts_b
    for f, o in zip(frames, out, strict=True):
        assert np.abs(lightness(o) - lightness(f)).max() < 0.6  # 8-bit rounding of one L
        assert np.abs(o.astype(int) - f).max() > 0  # and coloured, not the input
    np.testing.assert_allclose(audio_samples(dest), audio_samples(src), atol=1e-6)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no work folder left


def test_per_frame_is_the_photo_path_on_each_frame(tmp_path, model_path):
    src = tmp_path / "c.mp4"
    frames = make_clip(src, frames=6, w=64, h=48, audio=False)
    proc = run_transform(src, "--model", model_path, "--per-frame")
    assert proc.returncode == 0, proc.stderr[-2000:]
    colorizer = Colorizer(load_model(model_path))
    for f, o in zip(frames, video_frames(tmp_path / "c_color.mp4"), strict=True):
        ab, _ = colorizer.predict(network_input(f, 512)[None])
        expected = colorize_pixels(f, working_size_ab(ab[0], f))
        assert np.abs(o.astype(int) - expected).max() <= 1


def working_size_ab(ab, frame):
    """The network's ab resized to its input size, as ClipColorizer.abs does."""
    import cv2

    h, w = network_input(frame, 512).shape[:2]
    return cv2.resize(np.asarray(ab, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def test_stabilized_output_flickers_less_than_per_frame(model_path):
    model = load_model(model_path)
    colorizer = Colorizer(model, split_global=True)
    frames = [scene_frame(k, 96, 72) for k in range(12)]
    outputs = {}
    for name, stabilize in (("per-frame", False), ("stabilized", True)):
        cc = ClipColorizer(colorizer, 512, stabilize=stabilize)
        key = "stabilized" if stabilize else "per_frame"
        outputs[name] = [colorize_pixels(f, cc.abs([f])[0][key]) for f in frames]
    score = video_metrics.ClipScore()
    for k, f in enumerate(frames):
        score.add(f, {n: o[k] for n, o in outputs.items()})
    assert score.result("stabilized")["e_warp"] < score.result("per-frame")["e_warp"]


def test_evaluate_video_scores_every_output_and_the_clips_own_colours(tmp_path, model_path):
    """evaluate.py --video on a small clip: the gray input, per-frame, stabilized and the
    truth's own E_warp and CDC (computed here again from the clip's frames), the
    stabilized output steadier than per-frame, and a strip of frames."""
    import json

    import evaluate

    src = tmp_path / "moving.mp4"
    frames = make_clip(src, frames=12, w=96, h=72, audio=False)
    proc = run_main(evaluate.main, ["--video", src, "--model", model_path,
                                    "--out", tmp_path / "report"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "report" / "video.json").read_text())["clips"][str(src)]
    assert set(rows) == {"gray", "per-frame", "stabilized", "truth"}
    assert rows["stabilized"]["e_warp"] < rows["per-frame"]["e_warp"]
    own = video_metrics.ClipScore()
    for f in frames:
        own.add(f, {"truth": f})
    assert rows["truth"]["e_warp"] == pytest.approx(own.result("truth")["e_warp"], rel=1e-6)
    assert rows["truth"]["cdc"] == pytest.approx(own.result("truth")["cdc"], rel=1e-6)
    assert "auc" not in rows["truth"]  # the truth is what the image metrics measure against
    assert "truth" in proc.stdout
    assert (tmp_path / "report" / "strip_moving.jpg").stat().st_size > 0


def test_a_frame_folder_is_one_clip(tmp_path, model_path):
    import cv2

    folder = tmp_path / "scan"
    folder.mkdir()
    for k in (1, 2, 10, 11):  # numbered, not zero-padded: 10 comes after 2
        cv2.imwrite(str(folder / f"f{k}.png"), scene_frame(k, 64, 48)[..., ::-1])
    proc = run_transform(folder, "--model", model_path, "--frames")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "scan_color"
    assert sorted(os.listdir(out)) == ["f1.png", "f10.png", "f11.png", "f2.png"]
    got = cv2.imread(str(out / "f10.png"))[..., ::-1]
    assert np.abs(lightness(got) - lightness(scene_frame(10, 64, 48))).max() < 0.6


def test_a_broken_clip_is_one_line_and_the_rest_is_done(tmp_path, model_path):
    import cv2

    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    make_clip(tmp_path / "good.mkv", frames=5, audio=False)
    cv2.imwrite(str(tmp_path / "photo.png"), scene_frame(0, 64, 48))
    proc = run_transform(tmp_path / "broken.mp4", tmp_path / "good.mkv", tmp_path / "photo.png",
                         "--model", model_path)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("model_transform.py:")]
    assert len(lines) == 1 and "broken.mp4" in lines[0], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "good_color.mkv").exists() and (tmp_path / "photo_color.png").exists()
    assert not (tmp_path / "broken_color.mp4").exists()


def test_audio_that_the_container_cannot_hold_is_re_encoded(tmp_path, model_path):
    import av

    src = tmp_path / "pcm.mov"
    out = av.open(str(src), "w")
    video = out.add_stream("libx264rgb", rate=10)
    video.width, video.height, video.pix_fmt = 64, 48, "rgb24"
    sound = out.add_stream("pcm_s16le", rate=8000)
    sound.layout = "mono"
    for k in range(10):
        frame = av.VideoFrame.from_ndarray(scene_frame(k, 64, 48), format="rgb24")
        frame.pts = k
        for p in video.encode(frame):
            out.mux(p)
    for p in video.encode(None):
        out.mux(p)
    tone = (3000 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 300)).astype(np.int16)[None]
    chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
    chunk.sample_rate, chunk.pts = 8000, 0
    for p in [*sound.encode(chunk), *sound.encode(None)]:
        out.mux(p)
    out.close()
    proc = run_transform(src, "--model", model_path, "--out", tmp_path / "out.mp4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "audio re-encoded to AAC" in proc.stderr
    samples = audio_samples(tmp_path / "out.mp4")
    assert abs(len(samples) - 8000) < 2048  # one second, give or take AAC's frames
    assert 0.05 < np.abs(samples).max() < 0.2  # the tone (3000 / 32768), not silence


def test_a_killed_run_continues_from_its_last_segment(tmp_path, model_path):
    """SIGKILL after two segments; the same command continues from frame 8 and the
    result equals an uninterrupted run's, frame for frame, audio included."""
    src = tmp_path / "long.mp4"
    make_clip(src, frames=90, w=320, h=240, fps=15)
    whole = tmp_path / "whole"
    whole.mkdir()
    proc = run_transform(src, "--model", model_path, "--segment-frames", 4,
                         "--out", whole / "long_color.mp4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dest = tmp_path / "long_color.mp4"
    work = tmp_path / ".long_color.mp4.parts"
    cmd = [sys.executable, os.path.join(ROOT, "model_transform.py"), str(src), "--model",
           model_path, "--segment-frames", "4"]
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (work / "state_000001.npz").exists() and run.poll() is None \
            and time.time() < deadline:
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not dest.exists(), "the final file appeared before the run was complete"
    assert (work / "state_000001.npz").exists()
    proc = run_main(__import__("model_transform").main, [src, "--model", model_path,
                                                        "--segment-frames", 4])
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = int(proc.stderr.split("continued from frame ")[1].split()[0].rstrip(",:"))
    assert 8 <= resumed < 90
    a, b = video_frames(dest), video_frames(whole / "long_color.mp4")
    assert len(a) == len(b) == 90
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    np.testing.assert_array_equal(audio_samples(dest), audio_samples(whole / "long_color.mp4"))
    assert not work.exists()


def test_the_mean_chroma_stand_in_smooths_a_networks_colour_cast_within_a_shot():
    """For networks without a global vector (off by default: it raised CDC on the
    validation clips): a per-frame cast that alternates is damped, and a cut resets it."""
    stab = temporal.Stabilizer(flow_blend=False, mean_chroma=True)
    frame = temporal.l8(colorspace.rgb8_to_l(scene_frame(0, 64, 48)) / 100.0)
    means = []
    for k in range(12):
        ab = np.full((48, 64, 2), 0.5 + (0.04 if k % 2 else -0.04), np.float32)
        means.append(stab.step(frame, ab, stab.is_cut(frame)).mean())
    assert means[0] == pytest.approx(0.46)  # the first frame is its own prediction
    assert np.ptp(means[6:]) < 0.3 * 0.08
