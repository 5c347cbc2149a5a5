"""Shared fixtures: small generated photos and datasets, built once per session."""

import os
import sys

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def colourful_image(rng, h=180, w=240):
    """A smooth random colour picture (uint8 BGR, as cv2.imwrite wants)."""
    small = rng.uniform(0, 255, (4, 5, 3)).astype(np.float32)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, image.shape)  # some texture, as in a photo
    return np.clip(image, 0, 255).astype(np.uint8)


def write_photos(folder, count, rng, ext=".jpg"):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"img{i:03d}{ext}")
        cv2.imwrite(path, colourful_image(rng))
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def scenes_dataset(tmp_path_factory):
    """A small embedded-scenes dataset (built in-process, one worker)."""
    import input_create

    out = str(tmp_path_factory.mktemp("scenes"))
    sources, names, kind = input_create.synthetic_sources(96, seed=0)
    input_create.build(out, sources, names, kind, val_fraction=0.2, workers=1, progress=False)
    return out
