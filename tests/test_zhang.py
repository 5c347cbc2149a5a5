"""Zhang et al.'s variant: its output space and temperature, on its shared trained
run (the checks every system shares, training, save/load at any size,
model_transform.py and evaluate.py, are test_trained_systems.py's); and the
classification head on the Iizuka network."""


import cv2
import keras
import matplotlib.cbook
import numpy as np
import pytest

import build_model
import model_train
from colorization import ab_bins, colorspace, inference
from config import get_config

PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture(autouse=True)
def float32_policy():
    build_model.set_precision("float32")


@pytest.mark.parametrize("trained", ["zhang-demo"], indirect=True)
def test_lower_temperature_gives_more_saturated_colours(trained):
    model = inference.load_model(trained.model)
    gray = inference.network_input(cv2.imread(PHOTO)[..., ::-1], 256)[None]
    chroma = []
    for t in (1.0, 0.38, 0.05):
        ab = colorspace.model_to_ab(inference.Colorizer(model, temperature=t).predict(gray)[0])
        chroma.append(float(np.hypot(ab[..., 0], ab[..., 1]).mean()))
    # The mean of the predicted distribution is the least saturated (Zhang et al. Fig. 3).
    # Measured: mean chroma 26.0 at T = 1, 35.0 at 0.38, 42.4 at 0.05.
    assert chroma[0] < chroma[1] < chroma[2], chroma


def test_iizuka_network_with_the_classification_head(tmp_path):
    cfg = get_config("demo", model={"output": "ab_bins", "width": 0.0625},
                     train={"learning_rate": 1e-2})
    keras.utils.set_random_seed(0)
    model = build_model.build_model(cfg)
    q = len(ab_bins.gamut_bins())
    assert model.output["ab_bins"].shape[1:] == (112, 112, q) and "scene" in model.output
    styled = build_model.any_size_model(model, with_global_input=True)
    x = np.random.default_rng(0).random((2, 50, 70, 1)).astype(np.float32)
    out = styled.predict({"gray": x, "global_gray": x}, verbose=0)
    assert out["ab_bins"].shape == (2, 25, 35, q)
    # It trains: the rebalanced loss on one fixed batch (one colour per image) falls.
    xb = np.random.default_rng(1).random((4, 224, 224, 1)).astype(np.float32)
    colours = np.array([[20, -30], [-40, 10], [50, 60], [0, 0]], np.float32)
    ab = np.broadcast_to(colours[:, None, None], (4, 112, 112, 2))
    yb = {"ab_bins": ((ab + 128) / 255).astype(np.float32), "scene": np.arange(4, dtype=np.int32)}
    # Unweighted (no colour prior); the batch's spec builds the loss state up front.
    model_train.compile_model(model, cfg, with_labels=True, data_spec=(xb, yb))
    first = model.train_on_batch(xb, yb)
    for _ in range(15):
        last = model.train_on_batch(xb, yb)
    first, last = np.ravel(first)[0], np.ravel(last)[0]
    # Measured: 5.62 -> 2.97.
    assert last < 0.8 * first, (first, last)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(xb, verbose=0)["ab_bins"],
                               model.predict(xb, verbose=0)["ab_bins"], atol=1e-5)
