"""Reads the Lab TFRecords with tf.data: parse -> crop/flip -> (L, {ab, scene}).

    python read_input.py data/scenes --benchmark          # training examples/s
    python read_input.py data/scenes --split val --show samples.png

`make_dataset` yields what the model trains on:
  inputs   L / 100                      float32 (B, crop, crop, 1) in [0, 1]
  targets  {"ab": (ab + 128) / 255 at half resolution, area-averaged,
                                        float32 (B, crop/2, crop/2, 2) in [0, 1],
            "scene": class id            int32 (B,)}    ("scene" only with labels)
Both are the stored lab8 bytes divided by 255 (see colorspace.LAB8_TO_MODEL).
A model whose colour output is at another resolution or named otherwise (Zhang
et al.'s "ab_bins" at quarter resolution) asks for it with ab_stride / ab_key,
as its network and output space say (colorization/systems.py). target "uv"
(Varga & Szirányi's output space) gets U and V of YUV / 255 instead of ab,
computed from the stored Lab by colorspace.lab8_to_uv01 (the one implementation
of the conversion, run through tf.numpy_function).

Training: shuffled shard order, parallel interleave, a shuffle buffer, a random
crop and flip per example, repeated forever. Evaluation: the centre crop, files
and examples in a fixed order, one pass.
"""

import argparse
import json
import os
import sys
import time

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np
import tensorflow as tf

from colorization.colorspace import LAB8_TO_MODEL

AUTOTUNE = tf.data.AUTOTUNE
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}
SOURCE = tf.io.FixedLenFeature([], tf.string, default_value="")


class DatasetError(Exception):
    """The data folder is missing or not a finished input_create.py build."""


def load_summary(data_dir):
    """dataset.json of a finished build, or DatasetError saying how to make one."""
    path = os.path.join(data_dir, "dataset.json")
    if not os.path.isdir(data_dir):
        raise DatasetError(f"{data_dir}: no such dataset folder; build one first with "
                           f"`python input_create.py --synthetic 3000 --out {data_dir}`")
    if not os.path.exists(path):
        raise DatasetError(f"{data_dir} has no dataset.json (not built, or the build did not "
                           "finish); run input_create.py for it first")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        if not isinstance(summary, dict) or "splits" not in summary:
            raise ValueError("no splits in it")
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not a readable dataset summary "
                           f"({str(e).splitlines()[0][:80]}); rebuild it with input_create.py "
                           "(it redoes only what is missing)") from None
    return summary


def split_files(data_dir, split, summary=None):
    summary = summary or load_summary(data_dir)
    if split not in summary["splits"]:
        raise DatasetError(f"{data_dir} has no split {split!r}")
    files = [os.path.join(data_dir, f) for f in summary["splits"][split]["files"]]
    if not files or summary["splits"][split]["count"] == 0:
        raise DatasetError(f"{data_dir}: the {split} split is empty")
    return files


def parse_example(serialized, rows=None):
    """Serialized tf.train.Example -> (lab8 uint8 (H, W, 3), label int32). With
    `rows` (a table from source names, soft_label_rows), the label is the row of
    the example's soft label instead."""
    features = FEATURES if rows is None else {**FEATURES, "image/source": SOURCE}
    parsed = tf.io.parse_single_example(serialized, features)
    lab8 = tf.io.decode_png(parsed["image/encoded"], channels=3)
    if rows is not None:
        return lab8, tf.cast(rows.lookup(parsed["image/source"]), tf.int32)
    return lab8, tf.cast(parsed["image/class/label"], tf.int32)


def soft_label_rows(data_dir, summary):
    """(table: source name -> row, the rows' log-probabilities (N, 1000)) of the
    dataset's ImageNet labels (distill_labels.py); DatasetError, one line, when
    they are missing or stale (an example they lack stops the pipeline by name)."""
    from distill_labels import load_labels

    try:
        sources, log_probs = load_labels(data_dir, summary)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(sources, tf.string),
                                            tf.range(len(sources), dtype=tf.int64)), -1)
    return table, tf.constant(log_probs)


def soft_targets(log_probs, rows, temperature):
    """The distillation targets softmax(log p / T) of the batch's rows."""
    return tf.nn.softmax(tf.gather(log_probs, rows) / temperature, axis=-1)


def train_crop(lab8, seed, crop_size):
    """Random crop_size square and random horizontal flip, both drawn from `seed`.

    Stateless ops keyed by a shape-[2] seed: the same seed gives the same crop
    eagerly and inside tf.data, and parallel map calls share no random state.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    crop = tf.image.stateless_random_crop(lab8, [crop_size, crop_size, 3], seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])


def center_crop(lab8, crop_size):
    h, w = tf.shape(lab8)[0], tf.shape(lab8)[1]
    top, left = (h - crop_size) // 2, (w - crop_size) // 2
    return tf.ensure_shape(lab8[top:top + crop_size, left:left + crop_size],
                           [crop_size, crop_size, 3])


def uv_target(lab8_batch, stride=1):
    """Batched lab8 -> U and V / 255 (B, h/stride, w/stride, 2), area-averaged."""
    from colorization.colorspace import lab8_to_uv01

    uv = tf.numpy_function(lab8_to_uv01, [lab8_batch], tf.float32, stateful=False)
    uv = tf.ensure_shape(uv, lab8_batch.shape[:-1].concatenate([2]))
    return tf.nn.avg_pool2d(uv, stride, stride, "VALID") if stride > 1 else uv


def to_model_io(lab8_batch, labels, with_labels, ab_stride=2, ab_key="ab", target="ab"):
    """Batched lab8 crops -> (L, {ab_key: the colour target at 1/ab_stride resolution,
    "scene": labels}); target "ab": ab01, "uv": U and V / 255 (the output space's).
    `labels` are class ids, or a batch of soft targets."""
    x = tf.cast(lab8_batch, tf.float32)
    lightness = x[..., :1] * LAB8_TO_MODEL
    if target == "uv":
        colour = uv_target(lab8_batch, ab_stride)
    else:
        # Area downsampling to the colorization network's output resolution. Pooling
        # all three channels and slicing after is measured 1.4x faster than pooling
        # the 2-channel slice.
        colour = tf.nn.avg_pool2d(x, ksize=ab_stride, strides=ab_stride,
                                  padding="VALID")[..., 1:] * LAB8_TO_MODEL
    targets = {ab_key: colour}
    if with_labels:
        targets["scene"] = labels
    return lightness, targets


def make_dataset(data_dir, split="train", batch_size=32, training=True, crop_size=224,
                 shuffle_buffer=2048, with_labels=None, seed=None, drop_remainder=None,
                 repeat=None, ab_stride=2, ab_key="ab", target="ab", label_temperature=None):
    """The tf.data pipeline for one split; see the module docstring for its elements.
    label_temperature T: the "scene" targets are the dataset's ImageNet soft labels
    (distill_labels.py) at temperature T, not its class ids."""
    summary = load_summary(data_dir)
    files = split_files(data_dir, split, summary)
    rows = log_probs = None
    if label_temperature is not None:
        rows, log_probs = soft_label_rows(data_dir, summary)
        with_labels = True
    if with_labels is None:
        with_labels = summary["num_classes"] > 0
    repeat = training if repeat is None else repeat
    # A seeded pipeline is also ordered, so two runs see the same batches.
    deterministic = seed is not None
    drop_remainder = training if drop_remainder is None else drop_remainder

    if training:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                           num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if shuffle_buffer > 1:
            ds = ds.shuffle(shuffle_buffer, seed=seed)
        if repeat:
            ds = ds.repeat()
        # Each example's crop is keyed by (seed, position in the stream).
        base = tf.constant(seed if seed is not None else time.time_ns() % 2**31, tf.int64)
        ds = ds.enumerate().map(
            lambda i, s: _train_example(s, tf.stack([base, i]), crop_size, rows),
            num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        ds = tf.data.TFRecordDataset(files)
        ds = ds.map(lambda s: _eval_example(s, crop_size, rows), num_parallel_calls=AUTOTUNE)
        if repeat:
            ds = ds.repeat()
    if rows is not None:
        # An example the labels do not cover (row -1) stops the pipeline here, by
        # name, rather than as an out-of-range gather inside the training step.
        message = (f"an example of {data_dir} has no ImageNet label: run "
                   f"python distill_labels.py --data {data_dir}")
        ds = ds.map(lambda x, r: (x, _checked_row(r, message)))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if rows is not None:
        ds = ds.map(lambda x, r: (x, soft_targets(log_probs, r, label_temperature)),
                    num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda x, y: to_model_io(x, y, with_labels, ab_stride, ab_key, target),
                num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _checked_row(row, message):
    with tf.control_dependencies([tf.debugging.assert_non_negative(row, message=message)]):
        return tf.identity(row)


def _train_example(serialized, seed, crop_size, rows=None):
    lab8, label = parse_example(serialized, rows)
    return train_crop(lab8, seed, crop_size), label


def _eval_example(serialized, crop_size, rows=None):
    lab8, label = parse_example(serialized, rows)
    return center_crop(lab8, crop_size), label


# ---------------------------------------------------------------- command line


def benchmark(ds, batch_size, batches=50, repeats=5):
    """Median and spread of examples/s over `repeats` timings of `batches` batches."""
    it = iter(ds)
    for _ in range(10):  # warm-up: fills the prefetch and shuffle buffers
        next(it)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return float(np.median(rates)), float(min(rates)), float(max(rates))


def eval_crops(data_dir, split, crop_size=224, batch_size=32, limit=None):
    """Yields (lab8 centre crops (B, crop, crop, 3) uint8, labels, source names) as
    NumPy, in the fixed order of make_dataset(training=False): for evaluation,
    which scores full-resolution colours rather than the training targets."""
    features = {**FEATURES, "image/source": tf.io.FixedLenFeature([], tf.string,
                                                                    default_value="")}

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, features)
        lab8 = center_crop(tf.io.decode_png(parsed["image/encoded"], channels=3), crop_size)
        return lab8, tf.cast(parsed["image/class/label"], tf.int32), parsed["image/source"]

    ds = tf.data.TFRecordDataset(split_files(data_dir, split))
    if limit:
        ds = ds.take(limit)
    ds = ds.map(parse, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(2)
    for lab8, labels, sources in ds.as_numpy_iterator():
        yield lab8, labels, [s.decode("utf-8") for s in sources]


def decode_only_dataset(data_dir, split, batch_size):
    """The same shards read and PNG-decoded in parallel, nothing else: the ceiling
    the machine allows for `make_dataset`, to report beside its throughput."""
    files = split_files(data_dir, split)
    ds = tf.data.Dataset.from_tensor_slices(files).repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                       num_parallel_calls=AUTOTUNE, deterministic=False)
    ds = ds.map(lambda s: tf.shape(parse_example(s)[0])[0], num_parallel_calls=AUTOTUNE,
                deterministic=False)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def record_error_text(error, limit=160):
    """A TensorFlow error reading a record as one short line: its message without
    the `{{function_node ...}}` prefix that names TensorFlow's own graph."""
    import re

    text = str(getattr(error, "message", error)).strip()
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return (text.splitlines() or [type(error).__name__])[0][:limit]


def verify(data_dir, log=print):
    """Reads every record of every shard and decodes its image; returns the list of
    (shard, problem) found (empty: the dataset is whole) and logs each one."""
    summary = load_summary(data_dir)
    problems = []
    for split, info in summary["splits"].items():
        for name in info["files"]:
            path = os.path.join(data_dir, name)
            count, problem = 0, None
            try:
                for serialized in tf.data.TFRecordDataset(path):
                    lab8, _ = parse_example(serialized)
                    if lab8.shape[-1] != 3:
                        raise ValueError(f"record {count} is not a 3-channel image")
                    count += 1
            except (tf.errors.OpError, ValueError) as e:
                problem = f"record {count}: {record_error_text(e, 120)}"
            if problem is None and count != _shard_count(data_dir, name):
                problem = f"{count} records where the build wrote {_shard_count(data_dir, name)}"
            if problem:
                problems.append((name, problem))
                log(f"{split} shard {name}: {problem}")
    return problems


def _shard_count(data_dir, name):
    try:
        with open(os.path.join(data_dir, ".parts", name + ".json"), encoding="utf-8") as f:
            return json.load(f)["count"]
    except (OSError, ValueError, KeyError):
        return None


def rebuild_hint(data_dir, shard):
    """How to rebuild one damaged shard: remove it; input_create.py redoes only it."""
    return (f"remove {os.path.join(data_dir, shard)} and rerun the input_create.py command "
            f"that built {data_dir} (it rebuilds only the missing shard)")


def show(ds, summary, path, count=16):
    """Writes a grid of decoded samples: L and the colour rebuilt from L + half-res ab."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorization.colorspace import compose_rgb

    lightness, targets = next(iter(ds.unbatch().batch(count)))
    n = lightness.shape[0]
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2 * cols * 2, rows * 2.2))
    axes = np.atleast_2d(axes)
    for ax in axes.flat:
        ax.axis("off")
    names = summary.get("class_names") or []
    for k in range(n):
        r, c = divmod(k, cols)
        gray = lightness[k].numpy()[..., 0]
        axes[r, 2 * c].imshow(gray, cmap="gray", vmin=0, vmax=1)
        axes[r, 2 * c].set_title("L", fontsize=8)
        axes[r, 2 * c + 1].imshow(compose_rgb(gray, targets["ab"][k].numpy()))
        title = "L + ab"
        if "scene" in targets and names:
            title = names[int(targets["scene"][k])]
        axes[r, 2 * c + 1].set_title(title, fontsize=8)
    fig.tight_layout()
    from colorization.atomic_io import save_figure_atomic

    save_figure_atomic(fig, path, dpi=80)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quiet.add_verbose_flag(p)
    p.add_argument("data", help="dataset folder written by input_create.py")
    p.add_argument("--split", default="train")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--crop-size", type=int, default=224)
    p.add_argument("--benchmark", action="store_true",
                   help="print training examples/s beside the decode-only rate")
    p.add_argument("--batches", type=int, default=50, help="batches per benchmark timing")
    p.add_argument("--show", metavar="FILE.png", help="write a grid of decoded samples")
    p.add_argument("--verify", action="store_true",
                   help="read and decode every record; name each damaged shard (exit 1)")
    args = p.parse_args(argv)
    try:
        summary = load_summary(args.data)
        training = args.split == "train"
        if args.benchmark:
            ds = make_dataset(args.data, args.split, args.batch_size, training=True,
                              crop_size=args.crop_size)
            med, lo, hi = benchmark(ds, args.batch_size, args.batches)
            ceiling, _, _ = benchmark(decode_only_dataset(args.data, args.split,
                                                          args.batch_size),
                                      args.batch_size, args.batches)
            print(f"{args.split}: {med:.0f} examples/s (median of 5; min {lo:.0f}, max {hi:.0f}) "
                  f"in batches of {args.batch_size}, {args.crop_size}x{args.crop_size} crops, "
                  f"{os.cpu_count()} CPU cores; only reading and decoding the same shards: "
                  f"{ceiling:.0f} examples/s ({med / ceiling:.0%} of it)")
        if args.show:
            ds = make_dataset(args.data, args.split, 16, training=training,
                              crop_size=args.crop_size, repeat=False, drop_remainder=False)
            show(ds, summary, args.show)
            print(f"wrote {args.show}")
        if args.verify:
            problems = verify(args.data, log=lambda line: print(f"read_input.py: {line}",
                                                                 file=sys.stderr))
            for shard, _ in problems:
                print(f"  to repair: {rebuild_hint(args.data, shard)}", file=sys.stderr)
            print(f"{args.data}: " + (f"{len(problems)} damaged shard(s)" if problems
                                      else "every record reads and decodes"))
            return 1 if problems else 0
        if not (args.benchmark or args.show):
            for split, info in summary["splits"].items():
                print(f"{split}: {info['count']} examples in {len(info['files'])} shards")
    except DatasetError as e:
        print(f"read_input.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "read_input.py",
                            "nothing was written"))
