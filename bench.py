"""Speed and memory benchmarks; every figure is a median over repetitions after a
warm-up, measured in one run, and written to a JSON file with the device it ran on.

    python bench.py --train --infer --input --out bench.json
    python bench.py --transform --out bench.json   # model_transform.py per image size
    python bench.py --batch-norm --train --out bench.json   # fused against Keras's
    python bench.py --video --out bench.json       # clips: frames/s at 480p, 720p, 1080p

--batch-norm times one batch-norm layer (forward and backward) with the fused
kernel against Keras's own layer, and with --train also the whole training step
built each way (the figure before and after the fused layer).

--train and --infer are also given as a fraction of the device's own dense
matrix-multiply peak, measured in the same run in float32 and bfloat16 (model
FLOPs utilization, MFU: model FLOPs x images/s / peak; a training step counts 3x
the forward FLOPs). Each size of --transform runs in its own process, so its
peak memory is its own.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np

from colorization.atomic_io import write_json_atomic

ROOT = os.path.dirname(os.path.abspath(__file__))
TRANSFORM_MEGAPIXELS = (0.25, 1, 4, 12)


def device_info():
    """The host, the Keras backend and the GPUs it computes on (none: the CPU)."""
    import keras

    from colorization.devices import cpu_features, gpus

    return {"machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "cpu_features": cpu_features(),
            "python": platform.python_version(),
            "keras": keras.__version__, "backend": keras.backend.backend(),
            "gpus": [{"name": name, "compute_capability": f"{cc[0]}.{cc[1]}"}
                     for name, cc in gpus()]}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(field):
    """VmRSS or VmHWM (peak) of this process from /proc, in MB; None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_rss():
    """Restarts the kernel's peak-RSS count (Linux: clear_refs 5), so a peak measured
    afterwards is the work's own, not the model load's; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def photo_like(megapixels, seed=0):
    """A smooth random colour picture of about `megapixels`, 4:3, uint8 BGR."""
    import cv2

    w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = round(w * 3 / 4)
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def transform_child(model_path, image_path, max_side, repeats):
    """In a fresh process: seconds per image for model_transform.py's whole path
    (read, decode, network, full-resolution colour, encode, write) and peak memory."""
    import model_transform
    from colorization.inference import Colorizer, load_model

    args = model_transform.parse_args([image_path, "--max-side", str(max_side)])
    colorizer = Colorizer(load_model(model_path))
    baseline = peak_rss_mb()
    out = os.path.join(os.path.dirname(image_path), "out.jpg")
    times, rss_before, work_peak, warm_peak = [], None, None, 0.0
    for i in range(repeats + 1):  # the first run is the warm-up (tracing)
        if i == 1:
            warm_peak = peak_rss_mb()  # the reset below restarts the kernel's count
            if reset_peak_rss():
                rss_before = _status_mb("VmRSS")
        start = time.perf_counter()
        job = model_transform.load_job(image_path, out, args.max_pixels, args.max_side)
        ab, _probs = colorizer.predict(job.net_input[None])
        model_transform.finish_job(job, ab[0])
        del job, ab
        if i:
            times.append(time.perf_counter() - start)
    if rss_before is not None:
        work_peak = _status_mb("VmHWM") - rss_before
    print(json.dumps({"seconds": times, "peak_rss_mb": max(warm_peak, peak_rss_mb()),
                      "after_model_load_rss_mb": baseline, "work_peak_mb": work_peak}))


def _transform_child(model_path, path, max_side, repeats, mp, env=None):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--transform-child", model_path,
         path, str(max_side), str(repeats)],
        check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"transform benchmark at {mp} MP failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_transform(preset, max_side, repeats, sizes=TRANSFORM_MEGAPIXELS):
    import cv2

    import build_model
    from config import get_config

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.keras")
        build_model.build_model(get_config(preset)).save(model_path)
        for mp in sizes:
            image = photo_like(mp)
            path = os.path.join(tmp, f"photo_{mp}mp.jpg")
            cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            child = _transform_child(model_path, path, max_side, repeats, mp)
            # One image's own peak, measured again in a child whose allocator hands
            # every block over 1 MB back to the system when it is freed: with glibc's
            # default (a threshold that rises to the largest block freed so far), what
            # the warm-up image freed is partly kept and reused, and the peak of the
            # next image said more about that history than about its own needs.
            child["work_peak_mb"] = _transform_child(
                model_path, path, max_side, 1, mp,
                env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)})["work_peak_mb"]
            row = {"megapixels": image.shape[0] * image.shape[1] / 1e6,
                   "size": f"{image.shape[1]}x{image.shape[0]}",
                   "seconds_median": float(np.median(child["seconds"])),
                   "seconds_min": float(np.min(child["seconds"])),
                   "seconds_max": float(np.max(child["seconds"])),
                   "peak_rss_mb": child["peak_rss_mb"],
                   "after_model_load_rss_mb": child["after_model_load_rss_mb"],
                   # The peak above the process's memory between images (the model,
                   # the traced function): what one more image costs.
                   "work_peak_mb": child["work_peak_mb"],
                   "work_bytes_per_pixel": (None if child["work_peak_mb"] is None else
                                            child["work_peak_mb"] * 2**20
                                            / (image.shape[0] * image.shape[1]))}
            results.append(row)
            print(f"transform {row['size']:>11s} ({row['megapixels']:5.2f} MP): "
                  f"{row['seconds_median']:.2f} s/image (min {row['seconds_min']:.2f}, max "
                  f"{row['seconds_max']:.2f}), peak memory {row['peak_rss_mb']:.0f} MB "
                  f"({row['after_model_load_rss_mb']:.0f} MB after loading the model)"
                  + ("" if row["work_peak_mb"] is None else
                     f"; one image's own peak {row['work_peak_mb']:.0f} MB = "
                     f"{row['work_bytes_per_pixel']:.1f} bytes per input pixel"),
                  flush=True)
    by_mp = {round(r["megapixels"]): r for r in results}
    summary = {"preset": preset, "max_side": max_side, "repeats": repeats, "rows": results}
    if 1 in by_mp and 12 in by_mp:
        summary["time_12mp_over_1mp"] = by_mp[12]["seconds_median"] / by_mp[1]["seconds_median"]
        summary["memory_12mp_over_1mp"] = by_mp[12]["peak_rss_mb"] / by_mp[1]["peak_rss_mb"]
        print(f"12 MP vs 1 MP: time x{summary['time_12mp_over_1mp']:.2f}, peak memory "
              f"x{summary['memory_12mp_over_1mp']:.2f}")
    return summary


VIDEO_SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def pan_clip(path, w, h, frames, fps=25):
    """A clip panning over a photo_like picture (lossless, so decoding is cheap)."""
    import av

    picture = photo_like(w * (h + frames * 2) / 1e6 * 1.4)[..., ::-1]
    picture = np.ascontiguousarray(picture[: h + 2 * frames, : int(w * 1.2)])
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(picture[2 * k:2 * k + h, k:k + w]), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def video_child(model_path, clip_path, stabilize, repeats):
    """In a fresh process: seconds for model_transform.py's whole video path
    (decode, network, stabilizer, lossless encode, join) of the clip, and peak memory."""
    from colorization.inference import Colorizer, load_model
    from colorization.video import ClipColorizer, colorize_clip

    colorizer = Colorizer(load_model(model_path), split_global=stabilize == "1")
    times = []
    for i in range(repeats + 1):  # the first is the warm-up (tracing)
        if i == 1:
            reset_peak_rss()  # the peak of the timed runs, not of loading and tracing
        dest = os.path.join(os.path.dirname(clip_path), f"out{i}.mp4")
        clip_colorizer = ClipColorizer(colorizer, 512, stabilize=stabilize == "1")
        start = time.perf_counter()
        colorize_clip(clip_path, dest, clip_colorizer, {"run": i})
        if i:
            times.append(time.perf_counter() - start)
        os.remove(dest)
    print(json.dumps({"seconds": times, "peak_rss_mb": _status_mb("VmHWM") or peak_rss_mb()}))


def bench_video(model_path, repeats, frames=24):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (w, h) in VIDEO_SIZES.items():
            path = os.path.join(tmp, f"{name}.mp4")
            pan_clip(path, w, h, frames)
            for stabilize in ("0", "1"):
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--video-child", model_path,
                     path, stabilize, str(repeats)],
                    check=False, capture_output=True, text=True, cwd=ROOT)
                if proc.returncode != 0:
                    raise RuntimeError(f"video benchmark at {name} failed:\n"
                                       f"{proc.stderr[-2000:]}")
                child = json.loads(proc.stdout.strip().splitlines()[-1])
                seconds = float(np.median(child["seconds"]))
                row = {"size": name, "width": w, "height": h, "frames": frames,
                       "mode": "stabilized" if stabilize == "1" else "per-frame",
                       "seconds_median": seconds, "frames_per_s": frames / seconds,
                       "seconds": child["seconds"], "peak_rss_mb": child["peak_rss_mb"]}
                rows.append(row)
                print(f"video {name:>5s} {w}x{h} {row['mode']:>10s}: "
                      f"{row['frames_per_s']:.2f} frames/s (median of {repeats} runs of "
                      f"{frames} frames), peak memory {row['peak_rss_mb']:.0f} MB", flush=True)
    return {"model": model_path, "max_side": 512, "repeats": repeats, "rows": rows}


def _median_spread(times):
    t = np.asarray(times, np.float64)
    return {"median_s": float(np.median(t)), "min_s": float(t.min()), "max_s": float(t.max()),
            "repeats": len(t)}


def _compiled(fn):
    """fn compiled by the Keras backend's own compiler (tf.function / jax.jit)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def bench_matmul(dtype, n=None, repeats=10):
    """Dense n x n matrix product in `dtype`: GFLOP/s of the best repetition (the
    limit the device reaches, used as the peak) and of the median."""
    import keras
    from keras import ops

    from colorization.devices import gpus

    # A GPU finishes a 4096^3 product in well under a millisecond, where the call's
    # own overhead would count; 8192 is what its peak is quoted at.
    n = n or (8192 if gpus() else 4096)
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)

    def product(a, b):
        return ops.cast(ops.matmul(a, b)[0, 0], "float32")

    # Compiled, as the model's layers run in training: eager TensorFlow matmul was
    # measured at 0.6-0.8x of it here (bfloat16 loses the most).
    product = _compiled(product)
    for _ in range(3):
        ops.convert_to_numpy(product(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ops.convert_to_numpy(product(a, b))
        times.append(time.perf_counter() - start)
    flops = 2.0 * n ** 3
    return {"dtype": dtype, "n": n, "gflops": flops / np.min(times) / 1e9,
            "gflops_median": flops / np.median(times) / 1e9, **_median_spread(times)}


def forward_gflops(preset, input_size=224):
    """Model FLOPs of one forward pass, counted from the built layers."""
    import keras

    import build_model
    from config import get_config

    build_model.set_precision("float32")
    model = build_model.build_model(get_config(preset), input_size=input_size)
    total = sum(r[3] for r in build_model.layer_table(model)) / 1e9
    keras.backend.clear_session()
    return total


def compute_dtype(policy):
    return "bfloat16" if policy == "mixed_bfloat16" else (
        "float16" if policy == "mixed_float16" else "float32")


def bench_train(preset, policies, batch_size, peaks, steps=8, batch_norms=("fused",)):
    import model_train
    from colorization import layers
    from config import get_config

    fwd = forward_gflops(preset)
    rows = []
    for policy in policies:
        for kind in batch_norms:
            layers.FUSED_BATCH_NORM = kind == "fused"
            try:
                ips, times = model_train.benchmark_training(get_config(preset), policy,
                                                            batch_size, steps=steps)
            finally:
                layers.FUSED_BATCH_NORM = True
            peak = peaks.get(compute_dtype(policy))
            train_gflops = 3 * fwd * ips
            row = {"policy": policy, "batch_norm": kind, "batch_size": batch_size,
                   "images_per_s": ips, **_median_spread(times),
                   "model_gflops_per_s": train_gflops, "peak_dtype": compute_dtype(policy),
                   "mfu": train_gflops / peak if peak else None}
            rows.append(row)
            print(f"train {preset} {policy:15s} batch {batch_size}, {kind} batch norm: "
                  f"{ips:.2f} images/s, {train_gflops:.0f} model GFLOP/s", flush=True)
    return {"forward_gflops_per_image": fwd, "train_flops_factor": 3, "rows": rows}


def bench_batch_norm(policies, shape=(32, 112, 112, 128), repeats=10):
    """One batch-norm layer in training, forward and backward (gradients for the
    input, gamma and beta, the moving statistics updated), fused against Keras's."""
    import keras
    from keras import ops

    from colorization.layers import BatchNormalization as FusedBN

    if keras.backend.backend() != "tensorflow":
        return {"skipped": "the fused kernel is TensorFlow's; this backend uses Keras's layer"}
    import tensorflow as tf

    rows = []
    for policy in policies:
        dtype = compute_dtype(policy)
        x = tf.cast(keras.random.normal(shape, seed=3), dtype)
        for name, cls in (("keras", keras.layers.BatchNormalization),
                          ("fused", FusedBN)):
            layer = cls(momentum=0.9, dtype=keras.DTypePolicy(policy))
            layer.build(shape)

            @tf.function
            def step(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x, training=True)
                    loss = ops.sum(ops.cast(y, "float32"))
                grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
                return ops.sum(ops.cast(grads[0][0, 0, 0], "float32")) + ops.sum(grads[1])

            for _ in range(3):
                float(step(x))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                float(step(x))
                times.append(time.perf_counter() - start)
            rows.append({"policy": policy, "batch_norm": name, "shape": list(shape),
                         **_median_spread(times)})
        keras_s, fused_s = rows[-2]["median_s"], rows[-1]["median_s"]
        print(f"batch norm {'x'.join(map(str, shape))} {policy:15s} forward+backward: "
              f"Keras {keras_s * 1e3:.0f} ms, fused {fused_s * 1e3:.0f} ms "
              f"({keras_s / fused_s:.1f}x)", flush=True)
    return {"rows": rows}


def bench_infer(preset, policy, peaks, batch_size=16, full_size=1024, repeats=5):
    """Images/s at 224 (training-size model) and seconds per megapixel at full size."""
    import keras

    import build_model
    from config import get_config

    cfg = get_config(preset)
    fwd224, fwd_full = forward_gflops(preset), forward_gflops(preset, full_size)
    from colorization import systems

    build_model.set_precision(policy)
    model = build_model.build_model(cfg)
    key = systems.of_model(model)[1].name  # the colour output, whatever the system
    rng = np.random.default_rng(0)

    def timed(fn, x):
        for _ in range(2):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return times

    infer = keras.ops.convert_to_numpy

    def run(m):
        return lambda x: infer(m(x, training=False)[key])

    x224 = rng.random((batch_size, 224, 224, 1), np.float32)
    # The fixed 224 size runs as one compiled function (predict_on_batch): measured
    # 1.4x the eager call.
    t224 = timed(lambda x: model.predict_on_batch(x)[key], x224)
    ips = batch_size / np.median(t224)
    full = build_model.any_size_model(model)
    xfull = rng.random((1, full_size, full_size, 1), np.float32)
    # Full size as colorize.Colorizer runs it: compiled, shape-generic after the
    # second size (Keras traces predict functions with reduce_retracing). The eager
    # call, what it ran before, is kept beside it.
    full.predict_on_batch(rng.random((1, full_size // 2, full_size // 3, 1), np.float32))
    tfull = timed(lambda x: full.predict_on_batch(x)[key], xfull)
    teager = timed(run(full), xfull)
    per_image_224 = 1.0 / ips
    expected = per_image_224 * fwd_full / fwd224  # FLOP-proportional time at full size
    peak = peaks.get(compute_dtype(policy))
    result = {
        "policy": policy, "batch_size": batch_size, "images_per_s_224": ips,
        "times_224": _median_spread(t224), "model_gflops_per_s": fwd224 * ips,
        "peak_dtype": compute_dtype(policy), "mfu_224": fwd224 * ips / peak if peak else None,
        "full_size": f"{full_size}x{full_size}", "seconds_full": float(np.median(tfull)),
        "seconds_per_megapixel": float(np.median(tfull)) / (full_size * full_size / 1e6),
        "forward_gflops_224": fwd224, "forward_gflops_full": fwd_full,
        "flop_proportional_seconds_full": expected,
        "full_over_flop_proportional": float(np.median(tfull)) / expected,
        "seconds_full_eager": float(np.median(teager)),
        "full_eager_over_flop_proportional": float(np.median(teager)) / expected}
    print(f"infer {preset} {policy}: {ips:.1f} images/s at 224x224 (batch {batch_size}, "
          f"{fwd224 * ips:.0f} model GFLOP/s); "
          f"{result['seconds_full']:.2f} s at {full_size}x{full_size} "
          f"({result['seconds_per_megapixel']:.2f} s/MP), "
          f"{result['full_over_flop_proportional']:.2f}x the FLOP-proportional "
          f"{expected:.2f} s (eager: {result['seconds_full_eager']:.2f} s, "
          f"{result['full_eager_over_flop_proportional']:.2f}x)", flush=True)
    keras.backend.clear_session()
    return result


def bench_input(data_dir, batch_size=64):
    import read_input

    made = None
    if not data_dir or not os.path.exists(os.path.join(data_dir, "dataset.json")):
        import input_create

        made = tempfile.TemporaryDirectory()
        data_dir = made.name
        sources, names, kind = input_create.synthetic_sources(1024, seed=0)
        input_create.build(data_dir, sources, names, kind, val_fraction=0.02,
                           workers=os.cpu_count() or 1, progress=False)
    ds = read_input.make_dataset(data_dir, "train", batch_size, training=True)
    med, lo, hi = read_input.benchmark(ds, batch_size)
    ceiling = read_input.benchmark(read_input.decode_only_dataset(data_dir, "train",
                                                                  batch_size), batch_size)[0]
    print(f"input pipeline: {med:.0f} examples/s (min {lo:.0f}, max {hi:.0f}); reading and "
          f"decoding only: {ceiling:.0f} examples/s ({med / ceiling:.0%} of it)", flush=True)
    if made:
        made.cleanup()
    return {"data": data_dir if not made else "1024 synthetic scenes (temporary)",
            "batch_size": batch_size, "examples_per_s": med, "min": lo, "max": hi,
            "decode_only_examples_per_s": ceiling}


def sample_photos(folder, count, megapixels=0.2, seed=0):
    """`count` distinct JPEG photos of about `megapixels`: random crops of the
    colour photographs that ship with matplotlib, resized, quality 90."""
    import cv2
    import matplotlib.cbook

    sources = [cv2.imread(matplotlib.cbook.get_sample_data(n, asfileobj=False))
               for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]
    w = round((megapixels * 1e6 * 3 / 2) ** 0.5)
    h = round(w * 2 / 3)
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        src = sources[i % len(sources)]
        sh, sw = src.shape[:2]
        ch = int(min(sh, sw * 2 / 3) * rng.uniform(0.6, 1.0))
        cw = int(ch * 3 / 2)
        y, x = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
        crop = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
        paths.append(os.path.join(folder, f"photo{i:05d}.jpg"))
        cv2.imwrite(paths[-1], crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def bench_build(count=600, repeats=3, whole_count=3000):
    """input_create.py on ~0.2 MP JPEGs: images/s in one process (per core, the
    2^24-colour table already built), beside only decoding the same files; the
    worker pool's steady rate with one worker per core; and a whole build of
    `whole_count` photos (wall clock, startup and TensorFlow's import included)."""
    import cv2

    import input_create
    from colorization import colorspace
    from colorization.example_codec import Source, encode_source

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = sample_photos(os.path.join(tmp, "photos"), count)
        start = time.perf_counter()
        colorspace.rgb8_to_lab8(np.zeros((1, 1, 3), np.uint8), use_table=True)
        table_s = time.perf_counter() - start
        sources = [Source(os.path.basename(p), path=p) for p in paths]

        def encode_pass():
            start = time.perf_counter()
            sizes = [len(encode_source(s).png) for s in sources]
            return count / (time.perf_counter() - start), sizes

        def decode_pass():
            start = time.perf_counter()
            for p in paths:
                with open(p, "rb") as f:
                    cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
            return count / (time.perf_counter() - start)

        encode = [encode_pass() for _ in range(repeats)]
        decode = [decode_pass() for _ in range(repeats)]
        workers = os.cpu_count() or 1
        sample_photos(os.path.join(tmp, "many"), whole_count, seed=1)
        srcs, names, kind = input_create.folder_sources(os.path.join(tmp, "many"), flat=True)
        # The pool alone: photos/s between the 10% and the 100% mark, once every
        # worker has started and built its colour table.
        marks = {}
        start = time.perf_counter()
        for i, _ in enumerate(input_create.encode_all(srcs, workers, encode_source)):
            if i + 1 in (whole_count // 10, whole_count):
                marks[i + 1] = time.perf_counter() - start
        pool = (whole_count - whole_count // 10) / (marks[whole_count] - marks[whole_count // 10])
        start = time.perf_counter()
        input_create.build(os.path.join(tmp, "data"), srcs, names, kind, workers=workers,
                           progress=False)
        whole = whole_count / (time.perf_counter() - start)
    rates = [r for r, _ in encode]
    sizes = encode[0][1]
    result = {"photos": count, "megapixels": 0.2, "table_build_s": table_s,
              "images_per_s_one_process": float(np.median(rates)),
              "min": float(min(rates)), "max": float(max(rates)),
              "decode_only_images_per_s": float(np.median(decode)),
              "mean_example_kb": float(np.mean(sizes) / 1024),
              "max_example_kb": float(np.max(sizes) / 1024),
              "workers": workers, "pool_images_per_s": pool,
              "pool_images_per_s_per_worker": pool / workers,
              "whole_build_photos": whole_count, "whole_build_images_per_s": whole}
    print(f"build: {result['images_per_s_one_process']:.0f} photos/s in one process (min "
          f"{result['min']:.0f}, max {result['max']:.0f}); only decoding them: "
          f"{result['decode_only_images_per_s']:.0f}/s; {workers} worker processes "
          f"{pool:.0f} photos/s ({pool / workers:.0f} per worker); a whole build of "
          f"{whole_count} photos {whole:.0f} photos/s; examples "
          f"{result['mean_example_kb']:.0f} KB on average, "
          f"{result['max_example_kb']:.0f} KB at most; colour table built in {table_s:.1f} s",
          flush=True)
    return result


POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def bench_export(model_path, data_dir, photo_dirs, repeats=20, calibration_count=64):
    """The int8 TFLite and ONNX exports (calibrated on data_dir) against the float Keras
    model and the float32 exports, at 224 x 224 on one image at a time: images/s
    (median of `repeats` after a warm-up) and, on the photos of photo_dirs, the ab
    RMSE of each against the float Keras model and against the photos' own colour."""
    import export_model
    from colorization.colorspace import rgb_to_lab
    from colorization.inference import load_model
    from colorization.serving import serving_model

    model = load_model(model_path)
    serving = serving_model(model)
    photos = [img for _, img in export_model.check_photos(photo_dirs, 0, (224, 224))]
    runs = {"keras float32": lambda x: serving.predict_on_batch(x)}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        calibration = export_model.calibration_images(data_dir, (224, 224), calibration_count)
        for fmt, quantize in (("tflite", None), ("tflite", "int8"), ("onnx", None),
                              ("onnx", "int8")):
            name = f"{fmt} {quantize or 'float32'}"
            path = os.path.join(tmp, f"{quantize or 'float'}.{fmt}")
            if fmt == "tflite":
                export_model.write_tflite(serving, path, (224, 224), quantize, calibration)
            else:
                export_model.write_onnx(serving, path, quantize, calibration)
            runs[name] = export_model.runner(fmt, path)
            runs[name + " size_mb"] = os.path.getsize(path) / 1e6
        result = {"model": model_path, "calibration": data_dir, "photos": len(photos),
                  "keras_file_mb": os.path.getsize(model_path) / 1e6}
        floats = None
        truth = [rgb_to_lab(p / 255.0)[..., 1:] for p in photos]  # photos are 224 x 224
        for name, run in runs.items():
            if not callable(run):
                result[name.replace(" ", "_")] = run
                continue
            x = photos[0][None]
            run(x)  # warm-up: tracing, the interpreter's first plan
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t)
            abs_ = [np.asarray(run(p[None])["ab"])[0] for p in photos]
            floats = floats or abs_
            entry = {**_median_spread(times), "images_per_s": 1.0 / float(np.median(times)),
                     "ab_rmse_vs_keras_float": float(np.sqrt(np.mean(
                         [np.mean((a - f) ** 2) for a, f in zip(abs_, floats, strict=True)]))),
                     "ab_rmse_vs_truth": float(np.sqrt(np.mean(
                         [np.mean((a - t) ** 2) for a, t in zip(abs_, truth, strict=True)])))}
            result[name.replace(" ", "_")] = entry
            print(f"export {name:15s}: {entry['images_per_s']:6.1f} images/s at 224x224 "
                  f"(median of {repeats}); ab RMSE {entry['ab_rmse_vs_keras_float']:.2f} "
                  f"against float Keras, {entry['ab_rmse_vs_truth']:.2f} against the "
                  f"photos' colour", flush=True)
        result["network"] = _bench_network(model, calibration, photos, repeats, tmp)
    keras_float = result["keras_float32"]["images_per_s"]
    for fmt in ("tflite", "onnx"):
        speedup = result[f"{fmt}_int8"]["images_per_s"] / keras_float
        result[f"{fmt}_int8_speedup_vs_keras_float"] = speedup
        print(f"export int8 {fmt} / float Keras: {speedup:.2f}x images/s; file "
              f"{result[f'{fmt}_int8_size_mb']:.1f} MB against {result['keras_file_mb']:.1f} MB",
              flush=True)
    # The first figure's name, kept for the JSON files written before ONNX was measured.
    result["int8_speedup_vs_keras_float"] = result["tflite_int8_speedup_vs_keras_float"]
    return result


def _bench_network(model, calibration, photos, repeats, tmp):
    """The network alone (L in, its colour output out: no colour conversion, decoding
    or resizes), float32 Keras against float32 and int8 ONNX, at 224 x 224 one image at
    a time: images/s and the ab RMSE of the decoded output against float Keras. What
    int8 itself gains, apart from the float arithmetic that a whole export keeps."""
    import export_model
    from colorization import systems
    from colorization.inference import float32_model
    from colorization.serving import DecodeColour

    model = float32_model(model)
    network, output = systems.of_model(model)
    net = network.any_size(model, output, 224)
    centres = getattr(output, "centres", None)
    decode = DecodeColour(output.name, None, None if centres is None else centres().tolist(),
                          dtype="float32")
    inputs = [x[None] for x in export_model.lightness_inputs(photos)]

    def keras_run(x):
        return np.asarray(net.predict_on_batch(x)[output.name])

    runs = {"keras float32": keras_run}
    for quantize in (None, "int8"):
        path = os.path.join(tmp, f"network-{quantize or 'float'}.onnx")
        export_model.write_network_onnx(net, path, quantize, calibration)
        session = export_model.runner("onnx", path)
        runs[f"onnx {quantize or 'float32'}"] = (
            lambda x, session=session: np.asarray(session(x)[output.name]))
    result, floats = {}, None
    for name, run in runs.items():
        run(inputs[0])  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(inputs[0])
            times.append(time.perf_counter() - t)
        abs_ = [np.asarray(decode([run(x), x])) * 255.0 - 128.0 for x in inputs]
        floats = floats or abs_
        entry = {**_median_spread(times), "images_per_s": 1.0 / float(np.median(times)),
                 "ab_rmse_vs_keras_float": float(np.sqrt(np.mean(
                     [np.mean((a - f) ** 2) for a, f in zip(abs_, floats, strict=True)])))}
        result[name.replace(" ", "_")] = entry
        print(f"network alone {name:14s}: {entry['images_per_s']:6.1f} images/s at 224x224 "
              f"(median of {repeats}); ab RMSE {entry['ab_rmse_vs_keras_float']:.2f} against "
              "float Keras", flush=True)
    speedup = result["onnx_int8"]["images_per_s"] / result["keras_float32"]["images_per_s"]
    result["onnx_int8_speedup_vs_keras_float"] = speedup
    print(f"network alone, int8 onnx / float Keras: {speedup:.2f}x images/s", flush=True)
    return result


BENCHMARKS = ("train", "infer", "input", "build", "transform", "batch_norm", "export",
              "video", "profile")


def bench_profile(preset, policies, batch_size):
    """Where the time of one training step goes, per precision policy (step_profile);
    for the paper's optimizer, with Keras's Adadelta and with the fused one."""
    import step_profile
    from colorization import optimizers
    from config import get_config

    rows = []
    updates = ("keras", "fused") if get_config(preset).train.optimizer == "adadelta" else (
        "keras",)
    for policy in policies:
        for update in updates:
            optimizers.FUSED = update == "fused"
            try:
                r = step_profile.profile_training_step(get_config(preset), policy, batch_size)
            finally:
                optimizers.FUSED = True
            r["optimizer_update"] = update
            rows.append(r)
            print(f"profile {preset} {policy} batch {batch_size}, {update} optimizer update: "
                  f"{r['wall_ms_per_step']:.0f} ms per step (wall), "
                  f"{r['op_ms_per_step']:.0f} ms of op time", flush=True)
            for c in r["categories"]:
                print(f"  {c['category']:30s} {c['ms_per_step']:8.1f} ms  {c['share']:6.1%}",
                      flush=True)
            top = ", ".join(f"{x['layer']} {x['share']:.0%}" for x in r["layers"][:6])
            print(f"  the heaviest layers (convolutions and dense): {top}", flush=True)
    return {"preset": preset, "rows": rows}


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quiet.add_verbose_flag(p)
    p.add_argument("--train", action="store_true",
                   help="training images/s and MFU of the preset under each precision policy")
    p.add_argument("--infer", action="store_true",
                   help="inference images/s at 224x224 and seconds per megapixel at full size")
    p.add_argument("--input", action="store_true", help="input pipeline examples/s")
    p.add_argument("--batch-norm", action="store_true",
                   help="one batch-norm layer fused against Keras's (with --train, also the "
                        "training step built each way)")
    p.add_argument("--build", action="store_true",
                   help="dataset builder photos/s on 0.2 MP JPEGs, beside decode-only")
    p.add_argument("--transform", action="store_true",
                   help="model_transform.py seconds and peak memory at 0.25/1/4/12 MP")
    p.add_argument("--export", action="store_true",
                   help="int8 TFLite against float Keras: images/s at 224x224 and ab error "
                        "on --photos (calibrated on --data)")
    p.add_argument("--profile", action="store_true",
                   help="where the time of one training step of the preset goes (TensorFlow's "
                        "profiler), per --policies, at --batch-size")
    p.add_argument("--video", action="store_true",
                   help="model_transform.py on clips: frames/s and peak memory at 480p, "
                        "720p and 1080p, per-frame and stabilized")
    p.add_argument("--model", help="--export's and --video's model (default: the shipped "
                                   "real-photo model)")
    p.add_argument("--photos", nargs="+", help="--export's held-out photos or folders "
                   "(default: resources/photos)")
    p.add_argument("--data", default="data/scenes",
                   help="dataset for --input and --export's calibration (default "
                        "data/scenes; built if missing for --input)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch for --train")
    p.add_argument("--policies", default="float32,mixed_bfloat16",
                   help="precision policies for --train (comma-separated)")
    p.add_argument("--preset", default="paper",
                   help="the network(s) of --train, --infer and --transform: a preset, or "
                        "several separated by commas for --train and --infer")
    p.add_argument("--max-side", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench.json")
    p.add_argument("--transform-child", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--video-child", nargs=4, help=argparse.SUPPRESS)
    return p


def check_args(p, args):
    """Usage errors before any benchmark runs (they used to end minutes of work in
    a traceback, or be accepted and give empty figures)."""
    from config import PRESETS

    if not any(getattr(args, name) for name in BENCHMARKS):
        p.error("choose at least one benchmark: --train, --infer, --input, --build, "
                "--transform, --batch-norm, --export, --video, --profile")
    if args.export and not os.path.isdir(args.data):
        p.error(f"--export calibrates on --data {args.data}: no such folder (build one with "
                "input_create.py)")
    for preset in args.preset.split(","):
        if preset not in PRESETS:
            p.error(f"unknown --preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    for name, least in (("batch_size", 1), ("repeats", 1), ("max_side", 0)):
        if getattr(args, name) < least:
            p.error(f"--{name.replace('_', '-')} must be at least {least}")
    unknown = [q for q in args.policies.split(",") if q not in POLICIES]
    if unknown:
        p.error(f"unknown --policies {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if os.path.isdir(args.out) or not os.path.isdir(folder):
        p.error(f"--out {args.out}: " + ("is a folder" if os.path.isdir(args.out)
                                          else f"no folder {folder}"))
    if not os.access(folder, os.W_OK):
        p.error(f"--out {args.out}: cannot write in {folder}")


def run_child(args):
    """The measured child process of --video or --transform (one model, one input)."""
    if args.video_child:
        model, clip, stabilize, repeats = args.video_child
        video_child(model, clip, stabilize, int(repeats))
    else:
        model, image, max_side, repeats = args.transform_child
        transform_child(model, image, int(max_side), int(repeats))
    return 0


class PeakLog:
    """Every measurement of the matmul peaks in one run, per compute dtype. The peak
    that MFU divides by is the best of them all: measured before and after the model
    timings (and again where an MFU came out above 1), so that a peak measured while
    the shared machine was busy cannot pass for the machine's."""

    def __init__(self, dtypes):
        self.dtypes, self.runs = list(dtypes), []  # runs: [(when, {dtype: result})]

    def measure(self, when, repeats=10):
        results = {d: bench_matmul(d, repeats=repeats) for d in self.dtypes}
        self.runs.append((when, results))
        for d, r in results.items():
            print(f"matmul peak {d:8s} (n={r['n']}, {when}): {r['gflops']:.0f} GFLOP/s "
                  f"(best of {r['repeats']}; median {r['gflops_median']:.0f})", flush=True)

    def peak(self, dtype):
        return max((r[dtype]["gflops"] for _, r in self.runs if dtype in r), default=None)

    def peaks(self):
        return {d: self.peak(d) for d in self.dtypes}

    def summary(self):
        """report["matmul_peak"]: per dtype the peak, every measurement and their
        spread ((best - worst) / best of the measurements' best repetitions)."""
        out = []
        for d in self.dtypes:
            seen = [{"when": when, **r[d]} for when, r in self.runs if d in r]
            best = [m["gflops"] for m in seen]
            out.append({"dtype": d, "n": seen[-1]["n"], "gflops": max(best),
                        "gflops_median": float(np.median([m["gflops_median"] for m in seen])),
                        "spread": (max(best) - min(best)) / max(best), "measurements": seen})
        return out


def measure_peaks(policies, report):
    """The automatic policy (into report) and the matmul peaks measured before the
    model timings, for each compute dtype of `policies` and of that policy."""
    from colorization.devices import choose_precision

    auto, why = choose_precision("auto")
    report["auto_policy"] = {"policy": auto, "why": why}
    dtypes = ["float32", "bfloat16"]
    for policy in policies + [auto]:
        if compute_dtype(policy) not in dtypes:
            dtypes.append(compute_dtype(policy))
    log = PeakLog(dtypes)
    log.measure("before")
    return auto, log


def mfu_entries(report):
    """(entry, MFU key) of every model timing in the report, first preset and others."""
    entries = []
    for block in [report] + list(report.get("presets", {}).values()):
        for row in (block.get("train") or {}).get("rows", []):
            if all(row is not e for e, _ in entries):  # report["train"] is presets' first
                entries.append((row, "mfu"))
        infer = block.get("infer")
        if infer and "peak_dtype" in infer and all(infer is not e for e, _ in entries):
            entries.append((infer, "mfu_224"))
    return entries


def settle_mfu(report, log, remeasures=2):
    """Every MFU of the report against the best peak of the run. An MFU above 1 means
    the peak was measured low (the machine was disturbed): the peak is measured again,
    up to `remeasures` times; one still above 1 is not reported (None, with the reason).
    Prints each MFU as it stands in the report."""
    entries = mfu_entries(report)

    def recompute():
        """Every entry's MFU against the best peak so far; -> the highest of them."""
        for entry, key in entries:
            peak = log.peak(entry["peak_dtype"])
            entry[key] = entry["model_gflops_per_s"] / peak if peak else None
        return max((e[k] for e, k in entries if e[k] is not None), default=0.0)

    highest = recompute()
    for attempt in range(1, remeasures + 1):
        if highest <= 1.0:
            break
        print("an MFU came out above 100%: the peak measurement was disturbed; measuring "
              "the peak again", flush=True)
        log.measure(f"again {attempt}", repeats=20)
        highest = recompute()
    for entry, key in entries:
        if entry[key] is not None and entry[key] > 1.0:
            entry["mfu_refused"] = (f"the model ran faster than the matmul peak, measured "
                                    f"{len(log.runs)} times: the peak is not trustworthy "
                                    "in this run")
            entry[key] = None
    report["matmul_peak"] = log.summary()
    for entry, key in entries:
        what = (f"train {entry['policy']} batch {entry['batch_size']}, {entry['batch_norm']} "
                "batch norm" if key == "mfu" else f"infer {entry['policy']} at 224x224")
        value = (f"{entry[key]:.0%} of the {entry['peak_dtype']} matmul peak"
                 if entry[key] is not None
                 else f"no MFU ({entry.get('mfu_refused', 'no peak measured')})")
        print(f"MFU {what}: {value}", flush=True)


def bench_presets(args, report, auto, peaks):
    """--train and --infer of each preset of --preset, one after another in this run:
    report["train"] and ["infer"] hold the first, report["presets"] every one. peaks:
    the first measurement (settle_mfu then sets every MFU against the run's best)."""
    presets = args.preset.split(",")
    for preset in presets:
        entry = {}
        if args.train:
            entry["train"] = bench_train(preset, args.policies.split(","), args.batch_size,
                                         peaks, batch_norms=("keras", "fused")
                                         if args.batch_norm else ("fused",))
        if args.infer:
            entry["infer"] = bench_infer(preset, auto, peaks)
        if entry and preset == presets[0]:
            report.update(entry)
        if entry and len(presets) > 1:
            report.setdefault("presets", {})[preset] = entry


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    if args.video_child or args.transform_child:
        return run_child(args)
    check_args(p, args)
    report = {"device": device_info(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"CPU features: {', '.join(report['device']['cpu_features']) or 'none listed'}",
          flush=True)
    if args.batch_norm:
        report["batch_norm"] = bench_batch_norm(args.policies.split(","))
    if args.train or args.infer:
        auto, log = measure_peaks(args.policies.split(","), report)
        bench_presets(args, report, auto, log.peaks())
        log.measure("after")
        settle_mfu(report, log)
    if args.profile:
        report["profile"] = bench_profile(args.preset.split(",")[0], args.policies.split(","),
                                          args.batch_size)
    if args.input:
        report["input"] = bench_input(args.data)
    if args.build:
        report["build"] = bench_build()
    if args.transform:
        report["transform"] = bench_transform(args.preset.split(",")[0], args.max_side,
                                              args.repeats)
    if args.export or args.video:
        import export_model
        import model_transform

        model = args.model or model_transform.SHIPPED_MODEL
        if args.export:
            report["export"] = bench_export(model, args.data,
                                            args.photos or [export_model.DEFAULT_CHECK],
                                            max(args.repeats, 20))
        if args.video:
            report["video"] = bench_video(model, args.repeats)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    return 0

if __name__ == "__main__":
    sys.exit(interrupts.run(main, "bench.py",
                            "this run's measurements were not written; run it again"))
