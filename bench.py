"""Speed and memory benchmarks; every figure is a median over repetitions after a
warm-up, measured in one run, and written to a JSON file with the device it ran on.

    python bench.py --transform --out bench.json   # model_transform.py per image size

Each size of --transform runs in its own process, so its peak memory is its own.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = os.path.dirname(os.path.abspath(__file__))
TRANSFORM_MEGAPIXELS = (0.25, 1, 4, 12)


def device_info():
    return {"machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
    from colorize import Colorizer, load_model

    args = model_transform.parse_args([image_path, "--max-side", str(max_side)])
    colorizer = Colorizer(load_model(model_path))
    baseline = peak_rss_mb()
    out = os.path.join(os.path.dirname(image_path), "out.jpg")
    times = []
    for i in range(repeats + 1):  # the first run is the warm-up
        start = time.perf_counter()
        job = model_transform.load_job(image_path, out, args)
        ab, _probs = colorizer.predict(job.net_input[None])
        model_transform.finish_job(job, ab[0], None, args, [])
        if i:
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": times, "peak_rss_mb": peak_rss_mb(),
                      "after_model_load_rss_mb": baseline}))


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
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--transform-child", model_path,
                 path, str(max_side), str(repeats)],
                check=False, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"transform benchmark at {mp} MP failed:\n{proc.stderr[-2000:]}")
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"megapixels": image.shape[0] * image.shape[1] / 1e6,
                   "size": f"{image.shape[1]}x{image.shape[0]}",
                   "seconds_median": float(np.median(child["seconds"])),
                   "seconds_min": float(np.min(child["seconds"])),
                   "seconds_max": float(np.max(child["seconds"])),
                   "peak_rss_mb": child["peak_rss_mb"],
                   "after_model_load_rss_mb": child["after_model_load_rss_mb"]}
            results.append(row)
            print(f"transform {row['size']:>11s} ({row['megapixels']:5.2f} MP): "
                  f"{row['seconds_median']:.2f} s/image (min {row['seconds_min']:.2f}, max "
                  f"{row['seconds_max']:.2f}), peak memory {row['peak_rss_mb']:.0f} MB "
                  f"({row['after_model_load_rss_mb']:.0f} MB after loading the model)",
                  flush=True)
    by_mp = {round(r["megapixels"]): r for r in results}
    summary = {"preset": preset, "max_side": max_side, "repeats": repeats, "rows": results}
    if 1 in by_mp and 12 in by_mp:
        summary["time_12mp_over_1mp"] = by_mp[12]["seconds_median"] / by_mp[1]["seconds_median"]
        summary["memory_12mp_over_1mp"] = by_mp[12]["peak_rss_mb"] / by_mp[1]["peak_rss_mb"]
        print(f"12 MP vs 1 MP: time x{summary['time_12mp_over_1mp']:.2f}, peak memory "
              f"x{summary['memory_12mp_over_1mp']:.2f}")
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--transform", action="store_true",
                   help="model_transform.py seconds and peak memory at 0.25/1/4/12 MP")
    p.add_argument("--preset", default="paper")
    p.add_argument("--max-side", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench.json")
    p.add_argument("--transform-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.transform_child:
        model, image, max_side, repeats = args.transform_child
        transform_child(model, image, int(max_side), int(repeats))
        return 0
    if not args.transform:
        p.error("choose at least one benchmark (--transform)")
    report = {"device": device_info(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.transform:
        report["transform"] = bench_transform(args.preset, args.max_side, args.repeats)
    tmp = args.out + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
