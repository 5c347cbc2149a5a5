"""Builds a dataset of Lab TFRecords from a folder of photos or the embedded scenes.

    python input_create.py --synthetic 3000 --out data/scenes
    python input_create.py --images ~/places/train --out data/places --workers 16
    python input_create.py --images ~/places --labels places365_train.txt --out data/places \
        --num-tasks 8 --task-index 3          # one of eight machines

Sources: a folder tree with one sub-folder per class, a Places365-style list file
(`relative/path.jpg class_id` per line), or a flat folder without labels. Every
image is resized (short side) and centre-cropped to --size, converted to 8-bit Lab
(OpenCV's convention) and stored losslessly as PNG inside tf.train.Example records:

    image/encoded  PNG bytes of the H x W x 3 lab8 image
    image/format   b"png"       image/colorspace  b"lab8"
    image/height, image/width, image/class/label (-1 without labels), image/source

Output: {split}-{i:05d}-of-{n:05d}.tfrecord shards and dataset.json, written last.
Sources go to train or val by a hash of their relative path and to a shard by
another part of the same hash, so reruns and other machines agree. A shard is
written under a hidden temporary name and renamed when complete; its summary goes
to .parts/. Rerunning a killed build redoes only the missing shards. With
--num-tasks K --task-index I a task writes the shards i with i % K == I; the task
that finds every shard present writes dataset.json.

Bad sources (unreadable, truncated, not an image, too small, grayscale or
near-gray) are skipped and listed in dataset.json with their reason.
Exit status: 0 done, 2 usage error.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import time
from functools import partial

import numpy as np
from tqdm import tqdm

from colorization import colorspace, interrupts, quiet
from colorization.atomic_io import PREFIX, leftovers, temporary_path, write_json_atomic
from colorization.example_codec import AB_BIN_CENTERS, AB_BIN_SIZE, CROP_MARK, Source, encode_source
from colorization.image_io import is_image_name

SPLITS = ("train", "val")
EXAMPLES_PER_SHARD = 1024
# Class ids of a label list (Places365 has 365, ImageNet 1000): a typo of an id
# must not make a dataset.json of gigabytes of empty class counts.
MAX_CLASSES = 100_000
PARTS_DIR = ".parts"


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- sources


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def _walk_files(root):
    """Relative paths of every visible file under root, plus image-named folders."""
    files, odd = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = _visible(dirnames)
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            if is_image_name(d):
                odd.append(os.path.normpath(os.path.join(rel_dir, d)))
        for f in _visible(filenames):
            files.append(os.path.normpath(os.path.join(rel_dir, f)))
    return files, odd


def _file_source(root, rel, label):
    path = os.path.join(root, rel)
    reason = None if is_image_name(rel) else "not an image file name"
    return Source(relpath=rel, label=label, path=path, reason=reason)


def folder_sources(root, flat=False):
    """(sources, class_names, layout) for a class-per-folder tree or a flat folder."""
    if not os.path.isdir(root):
        raise UsageError(f"--images {root}: no such folder")
    files, odd = _walk_files(root)
    if not files:
        raise UsageError(f"--images {root}: the folder has no files")
    odd_sources = [Source(relpath=d, reason="is a directory, not an image file") for d in odd]
    class_dirs = [d for d in _visible(os.listdir(root))
                  if os.path.isdir(os.path.join(root, d)) and not is_image_name(d)]
    if flat or not class_dirs:
        return [_file_source(root, f, -1) for f in files] + odd_sources, [], "flat"
    index = {name: i for i, name in enumerate(class_dirs)}
    sources = []
    for f in files:
        top = f.split(os.sep, 1)[0]
        if top in index and os.sep in f:
            sources.append(_file_source(root, f, index[top]))
        else:
            sources.append(Source(relpath=f, reason="not inside a class folder"))
    return sources + odd_sources, class_dirs, "folder-tree"


def list_sources(root, list_path):
    """Sources from a Places365-style list: `relative/path.jpg class_id` per line."""
    if not os.path.isdir(root):
        raise UsageError(f"--images {root}: no such folder")
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"--labels {list_path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--labels {list_path}: not UTF-8 text") from None
    sources, names = [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UsageError(f"--labels {list_path}:{number}: expected 'path class_id', "
                             f"got {line.strip()!r}")
        rel, label = os.path.normpath(parts[0].lstrip("/")), int(parts[1])
        if label < 0:
            raise UsageError(f"--labels {list_path}:{number}: negative class id {label}")
        if label >= MAX_CLASSES:
            raise UsageError(f"--labels {list_path}:{number}: class id {label} is over "
                             f"{MAX_CLASSES - 1} (ids count up from 0)")
        if rel == ".." or rel.startswith(".." + os.sep):
            raise UsageError(f"--labels {list_path}:{number}: {parts[0]} is outside --images")
        names.setdefault(label, os.path.dirname(rel) or f"class_{label}")
        sources.append(_file_source(root, rel, label))
    if not sources:
        raise UsageError(f"--labels {list_path}: the list is empty")
    num_classes = max(names) + 1
    return sources, [names.get(i, f"class_{i}") for i in range(num_classes)], "list"


def synthetic_sources(count, seed):
    from colorization.scenes import CLASS_NAMES
    sources = [Source(relpath=f"scene-{i:06d}.png", seed=seed, index=i) for i in range(count)]
    return sources, list(CLASS_NAMES), "synthetic"


# ---------------------------------------------------------------- splitting


def _hash(relpath):
    # surrogateescape: a file named in another encoding (Latin-1 bytes) is a str
    # with lone surrogates here; its bytes hash as they are.
    return int.from_bytes(hashlib.sha1(relpath.encode("utf-8", "surrogateescape")).digest()[:8],
                          "little")


def split_of(relpath, val_fraction):
    return "val" if (_hash(relpath) % 1_000_000) < val_fraction * 1_000_000 else "train"


def shard_of(relpath, num_shards):
    return (_hash(relpath) >> 24) % num_shards


def plan(sources, val_fraction, shards=None):
    """{split: [[sources of shard 0], ...]}, every shard sorted by path."""
    by_split = {s: [] for s in SPLITS}
    for src in sources:
        # By the photo, not the crop: no photo has crops on both sides.
        by_split[split_of(src.group, val_fraction)].append(src)
    if val_fraction > 0 and not by_split["val"] and len(by_split["train"]) > 1:
        # A tiny dataset whose hashes all landed in train still gets one val example.
        first = min(by_split["train"], key=lambda s: _hash(s.group) % 1_000_000)
        moved = [s for s in by_split["train"] if s.group == first.group]
        by_split["train"] = [s for s in by_split["train"] if s.group != first.group]
        by_split["val"] += moved
    layout = {}
    for split, items in by_split.items():
        if not items:
            layout[split] = []
            continue
        n = shards if (shards and split == "train") else math.ceil(len(items) / EXAMPLES_PER_SHARD)
        if shards and split == "val":
            n = max(1, min(n, shards))
        n = max(1, n)
        buckets = [[] for _ in range(n)]
        for src in items:
            buckets[shard_of(src.relpath, n)].append(src)
        layout[split] = [sorted(b, key=lambda s: s.relpath) for b in buckets]
    return layout


def shard_name(split, i, n):
    return f"{split}-{i:05d}-of-{n:05d}.tfrecord"


# ---------------------------------------------------------------- writing


def _serialize(tf, enc):
    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": b(enc.png),
        "image/format": b(b"png"),
        "image/colorspace": b(b"lab8"),
        "image/height": i(enc.size[0]),
        "image/width": i(enc.size[1]),
        "image/class/label": i(enc.label),
        "image/source": b(enc.relpath.encode("utf-8", "surrogateescape")),
    })).SerializeToString(deterministic=True)  # map order fixed: reruns are byte-identical


class ShardWriter:
    """Writes one shard under a hidden name; `close` renames it into place."""

    def __init__(self, tf, out, split, index, total, num_classes):
        self.tf = tf
        self.final = os.path.join(out, shard_name(split, index, total))
        for stale in leftovers(self.final):  # of a build killed while writing this shard
            os.remove(stale)
        self.partial = temporary_path(self.final)
        self.summary_path = os.path.join(out, PARTS_DIR, shard_name(split, index, total) + ".json")
        self.writer = tf.io.TFRecordWriter(self.partial)
        self.count, self.bytes = 0, 0
        self.class_counts = np.zeros(max(num_classes, 1), np.int64)
        self.hist = np.zeros((len(AB_BIN_CENTERS),) * 2, np.int64)
        self.skipped = []
        self.dropped = 0

    def add(self, enc):
        if enc.dropped:
            self.dropped += 1
            return
        if enc.reason:
            self.skipped.append({"source": enc.relpath, "reason": enc.reason})
            return
        self.writer.write(_serialize(self.tf, enc))
        self.count += 1
        self.bytes += len(enc.png)
        self.hist += enc.ab_hist
        if enc.label >= 0:
            self.class_counts[enc.label] += 1

    def discard(self):
        self.writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.partial)

    def close(self):
        self.writer.close()
        write_json_atomic(self.summary_path, {
            "count": self.count, "png_bytes": self.bytes, "skipped": self.skipped,
            "crops_not_made": self.dropped,
            "class_counts": self.class_counts.tolist(), "ab_histogram": self.hist.tolist()})
        os.replace(self.partial, self.final)  # last: the shard's name means "complete"


def _is_complete(out, split, i, n):
    name = shard_name(split, i, n)
    return (os.path.exists(os.path.join(out, name))
            and os.path.exists(os.path.join(out, PARTS_DIR, name + ".json")))


def _init_worker(build_table):
    import signal

    import cv2
    # Ctrl-C reaches the whole process group: the parent alone answers it (one line,
    # the pool torn down), not each worker with its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # the pool is the parallelism
    if build_table:
        colorspace.build_rgb8_table()


def encode_all(jobs, workers, encode, stored_size=256):
    """Yields Encoded results in job order, from a pool of spawned workers."""
    if workers <= 1:
        yield from map(encode, jobs)
        return
    # A worker with enough photos ahead builds the RGB -> Lab table at once rather
    # than converting its first photos the slow way before it pays off.
    build_table = len(jobs) * stored_size ** 2 > workers * colorspace.TABLE_AFTER_PIXELS
    # spawn, not fork: the parent may already hold TensorFlow's threads.
    ctx = multiprocessing.get_context("spawn")
    with _single_threaded_children(), ctx.Pool(workers, initializer=_init_worker,
                                               initargs=(build_table,)) as pool:
        yield from pool.imap(encode, jobs, chunksize=8)


@contextlib.contextmanager
def _single_threaded_children():
    """Worker processes started inside see one thread for BLAS/OpenMP (read when
    they import NumPy): the pool is the parallelism, and idle BLAS threads spin."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def write_summary(out, layout, class_names, meta):
    """Merges the shard summaries into dataset.json; called once every shard exists."""
    n_bins = len(AB_BIN_CENTERS)
    splits, skipped, not_made = {}, [], 0
    hist = np.zeros((n_bins, n_bins), np.int64)
    class_counts = {}
    total_bytes = 0
    for split, shards in layout.items():
        count, counts = 0, np.zeros(max(len(class_names), 1), np.int64)
        files = [shard_name(split, i, len(shards)) for i in range(len(shards))]
        for name in files:
            with open(os.path.join(out, PARTS_DIR, name + ".json"), encoding="utf-8") as f:
                part = json.load(f)
            count += part["count"]
            total_bytes += part["png_bytes"]
            counts += np.asarray(part["class_counts"], np.int64)
            skipped += part["skipped"]
            not_made += part.get("crops_not_made", 0)
            if split == "train":
                hist += np.asarray(part["ab_histogram"], np.int64)
        splits[split] = {"count": count, "files": files}
        class_counts[split] = counts.tolist() if class_names else []
    written = sum(s["count"] for s in splits.values())
    summary = {
        "format": "lab8-png-tfrecord",
        "version": 1,
        **meta,
        "encoding": {"image": "png", "colorspace": "lab8",
                     "lab8": "OpenCV 8-bit Lab: L*255/100, a+128, b+128 (D65, sRGB)"},
        "num_classes": len(class_names),
        "class_names": class_names,
        "splits": splits,
        "class_counts": class_counts,
        "mean_example_bytes": round(total_bytes / max(written, 1)),
        "skipped_count": len(skipped),
        # --crops-per-image: crops a photo was too small to give (not a problem).
        "crops_not_made": not_made,
        "skipped": sorted(skipped, key=lambda s: s["source"]),
        "ab_histogram": {"bin_size": AB_BIN_SIZE, "centers": AB_BIN_CENTERS.tolist(),
                         "axes": ["a", "b"], "split": "train", "counts": hist.tolist()},
    }
    write_json_atomic(os.path.join(out, "dataset.json"), summary)
    return summary


def with_crops(sources, crops_per_image, seed=0, min_scale=0.3):
    """Each photo source as up to crops_per_image random crops (1: unchanged).

    A photo's crops are made (or not, for a photo too small for that many) by the
    worker that decodes it; see example_codec.crops_for."""
    if crops_per_image <= 1:
        return sources
    out = []
    for src in sources:
        if src.seed is not None or src.reason:
            out.append(src)
            continue
        out += [dataclasses.replace(src, relpath=f"{src.relpath}{CROP_MARK}{k:02d}", crop=k,
                                    crops=crops_per_image, crop_seed=seed,
                                    crop_min_scale=min_scale)
                for k in range(crops_per_image)]
    return out


def build(out, sources, class_names, layout_kind, stored_size=256, val_fraction=0.02,
          min_side=64, min_chroma=3.0, shards=None, workers=1, num_tasks=1, task_index=0,
          overwrite=False, source_root=None, progress=True, crops_per_image=1, crop_seed=0,
          crop_min_scale=0.3):
    """Writes this task's missing shards; returns dataset.json's dict when complete, else None."""
    os.makedirs(os.path.join(out, PARTS_DIR), exist_ok=True)
    photos = len(sources)
    sources = with_crops(sources, crops_per_image, crop_seed, crop_min_scale)
    layout = plan(sources, val_fraction, shards)
    if layout_kind == "synthetic" and sources:
        source_root = f"seed {sources[0].seed}"  # lets evaluate.py re-render sky masks
    meta = {"source": {"layout": layout_kind, "root": source_root, "sources": photos,
                       "digest": sources_digest(sources)},
            "class_names": list(class_names),
            "stored_size": stored_size, "val_fraction": val_fraction, "min_side": min_side,
            "min_chroma": min_chroma, "shards": {k: len(v) for k, v in layout.items()}}
    if crops_per_image > 1:
        meta["crops"] = {"per_image": crops_per_image, "seed": crop_seed,
                         "min_scale": crop_min_scale}
    _check_settings(out, meta, overwrite)

    owned = [(split, i, len(shards_)) for split, shards_ in layout.items()
             for i in range(len(shards_)) if i % num_tasks == task_index]
    todo = [key for key in owned if not _is_complete(out, *key)]
    jobs = [(key, src) for key in todo for src in layout[key[0]][key[1]]]
    encode = partial(encode_source, stored_size=stored_size, min_side=min_side,
                     min_chroma=min_chroma)
    if todo:
        import tensorflow as tf  # only the parent writes records

        bar = tqdm(total=len(jobs), unit="img", desc=f"building {os.path.basename(out)}",
                   disable=not progress, dynamic_ncols=True)
        results = encode_all([src for _, src in jobs], workers, encode, stored_size)
        for split, i, n in todo:
            writer = ShardWriter(tf, out, split, i, n, len(class_names))
            try:
                for _ in layout[split][i]:
                    writer.add(next(results))
                    bar.update(1)
            except BaseException:  # Ctrl-C, SIGTERM: the finished shards stay, this one goes
                writer.discard()
                raise
            writer.close()
        bar.close()
    if all(_is_complete(out, split, i, len(s)) for split, s in layout.items()
           for i in range(len(s))):
        return write_summary(out, layout, class_names, meta)
    return None


SHARD_RE = re.compile(r"(train|val)-\d{5}-of-\d{5}\.tfrecord")


def _ours(name):
    """A file name this builder writes in --out (shards, their temporaries)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):].split(".tfrecord.", 1)[0] + ".tfrecord"
    return bool(SHARD_RE.fullmatch(name))


def _is_our_summary(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("format") == "lab8-png-tfrecord"
    except (OSError, ValueError, AttributeError):
        return False


def _check_settings(out, meta, overwrite):
    """Refuses to mix shards of two different builds (settings, classes or sources)
    in one folder, or to build into a folder holding something else; --overwrite
    removes an earlier build, and only what this builder wrote."""
    parts = os.path.join(out, PARTS_DIR)
    path = os.path.join(parts, "build.json")
    if overwrite:
        for name in os.listdir(out):
            full = os.path.join(out, name)
            if _ours(name) or (name == "dataset.json" and _is_our_summary(full)):
                os.remove(full)
        for name in os.listdir(parts):
            if name == "build.json" or (name.endswith(".json") and _ours(name[:-5])):
                os.remove(os.path.join(parts, name))
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
        now = json.loads(json.dumps(meta))
        if previous is not None and "class_names" not in previous:
            # A record of an older version, without the classes and the sources'
            # digest: compared on what it holds.
            now = {k: v for k, v in now.items() if k in previous}
            now["source"] = {k: v for k, v in now.get("source", {}).items()
                             if k in previous.get("source", {})}
        if previous != now:
            changed = sorted(k for k in set(now) | set(previous or {})
                             if (previous or {}).get(k) != now.get(k))
            raise UsageError(f"{out} holds a build with other {', '.join(changed) or 'settings'}"
                             "; resuming it would mix the two: use another --out, or add "
                             "--overwrite to replace it")
    else:
        foreign = [n for n in os.listdir(out) if n != PARTS_DIR and not _ours(n)]
        if foreign and not overwrite:
            raise UsageError(f"{out} is not empty and holds no build of input_create.py "
                             f"({foreign[0]}, ...); give a new or empty folder")
        write_json_atomic(path, meta)


def sources_digest(sources):
    """A hash of every source's path and label: a resumed build must have the same."""
    digest = hashlib.sha1()
    for src in sorted(sources, key=lambda s: s.relpath):
        digest.update(f"{src.relpath}\t{src.label}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


# ---------------------------------------------------------------- command line


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    quiet.add_verbose_flag(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of photos (class sub-folders, or flat)")
    src.add_argument("--synthetic", type=int, metavar="N", help="generate N embedded scenes")
    p.add_argument("--labels", help="list file 'relative/path.jpg class_id' (Places365 format)")
    p.add_argument("--flat", action="store_true", help="ignore sub-folders as classes: no labels")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=256, help="stored image size (default 256)")
    p.add_argument("--val-fraction", type=float, default=0.02)
    p.add_argument("--min-side", type=int, default=64, help="skip smaller sources")
    p.add_argument("--min-chroma", type=float, default=3.0,
                   help="skip near-gray sources with lower mean ab chroma (0 keeps all)")
    p.add_argument("--shards", type=int, help=f"train shards (default: {EXAMPLES_PER_SHARD} "
                   "examples each)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--num-tasks", type=int, default=1)
    p.add_argument("--task-index", type=int, default=0)
    p.add_argument("--crops-per-image", type=int, default=1, metavar="K",
                   help="store up to K random crops of each photo at random scales (the "
                        "first is the whole photo; a photo gives one crop per 256x256 of "
                        "its short side's square, at most K); the split stays by photo")
    p.add_argument("--crop-min-scale", type=float, default=0.3,
                   help="smallest crop side as a fraction of the photo's short side (0.3)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic scenes and of the crops")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier build in --out")
    args = p.parse_args(argv)
    # Checked before anything is written: a size of 0 skipped every source and
    # exited 0, a worker count of 0 crashed the pool.
    for flag, value, least in (("--size", args.size, 32), ("--min-side", args.min_side, 1),
                               ("--workers", args.workers, 1), ("--num-tasks", args.num_tasks, 1),
                               ("--shards", args.shards, 1)):
        if value is not None and value < least:
            p.error(f"{flag} must be at least {least}")
    if args.min_chroma < 0:
        p.error("--min-chroma must be 0 or more")
    if args.size > 4096:
        p.error("--size must be at most 4096 (the stored examples are size x size)")
    if not 0 <= args.task_index < args.num_tasks:
        p.error("--task-index must be in [0, --num-tasks)")
    if not 0 <= args.val_fraction < 1:
        p.error("--val-fraction must be in [0, 1)")
    if args.crops_per_image < 1:
        p.error("--crops-per-image must be at least 1")
    if not 0 < args.crop_min_scale <= 1:
        p.error("--crop-min-scale must be in (0, 1]")
    if args.synthetic is not None and args.synthetic < 1:
        p.error("--synthetic needs a positive count")
    if args.labels and not args.images:
        p.error("--labels needs --images (the folder the list's paths are relative to)")
    return args


def main(argv=None):
    quiet.install(argv)  # the writer imports TensorFlow
    args = parse_args(argv)
    try:
        if args.synthetic:
            sources, class_names, kind = synthetic_sources(args.synthetic, args.seed)
            root = None
        elif args.labels:
            sources, class_names, kind = list_sources(args.images, args.labels)
            root = os.path.abspath(args.images)
        else:
            sources, class_names, kind = folder_sources(args.images, flat=args.flat)
            root = os.path.abspath(args.images)
        os.makedirs(args.out, exist_ok=True)
        # A finished build is checked like an unfinished one (same settings,
        # classes and sources) before it is called complete.
        was_complete = (not args.overwrite
                        and _is_our_summary(os.path.join(args.out, "dataset.json")))
        start = time.perf_counter()
        summary = build(args.out, sources, class_names, kind, stored_size=args.size,
                        val_fraction=args.val_fraction, min_side=args.min_side,
                        min_chroma=args.min_chroma, shards=args.shards, workers=args.workers,
                        num_tasks=args.num_tasks, task_index=args.task_index,
                        overwrite=args.overwrite, source_root=root,
                        progress=sys.stderr.isatty(), crops_per_image=args.crops_per_image,
                        crop_seed=args.seed, crop_min_scale=args.crop_min_scale)
    except UsageError as e:
        print(f"input_create.py: error: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    if was_complete and summary is not None:
        print(f"{args.out} is already complete ({summary['splits']['train']['count']} train, "
              f"{summary['splits']['val']['count']} val); --overwrite rebuilds it")
        return 0
    if summary is None:
        print(f"task {args.task_index} of {args.num_tasks} done in {elapsed:.1f}s; "
              "dataset.json is written by the task that finishes last")
        return 0
    reasons = {}
    for s in summary["skipped"]:
        key = s["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    print(f"{args.out}: wrote {summary['splits']['train']['count']} train and "
          f"{summary['splits']['val']['count']} val examples, skipped "
          f"{summary['skipped_count']} in {elapsed:.1f}s"
          + ("".join(f"\n  skipped {n}: {r}" for r, n in sorted(reasons.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "input_create.py",
                            "the finished shards are kept and the same command goes on from them"))
