"""Colorizing one image of any size with a trained model: the library under
model_transform.py (and evaluate.py).

The network sees L with its long side capped at `max_side` (chroma is
low-frequency), the global path sees it at 224x224, and the predicted ab, at
half the network's resolution, is upsampled to the full resolution and joined
with the image's own full-resolution L. The full-resolution work is done in
strips of rows, so a 12-megapixel photo needs little more memory than the
network's input.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from colorization.colorspace import (
    fit_chroma_to_gamut,
    lab_to_rgb,
    lab_to_rgb8,
    model_to_ab,
    rgb8_to_l,
    rgb_to_lab,
    saturate_ab01,
)
from colorization.image_io import to_float

# Full-resolution work goes in strips of about this many pixels (rows = this / width),
# so the float temporaries stay a few MB per thread whatever the photo's width.
# Measured on a 4000x3000 JPEG: 256-row strips (1M pixels) made colorizing peak at
# 13.3 bytes per input pixel above the decoded input and took 1.81 s (median of 5);
# 64K-pixel strips 3.3 bytes (3 of them the output) and 1.53 s, smaller being
# friendlier to the caches.
STRIP_PIXELS = 1 << 16


def strip_rows(width):
    return max(1, STRIP_PIXELS // max(1, width))


class ModelError(Exception):
    """The model file cannot be used; str(error) is the one-line reason."""


def load_failure(error):
    """The cause of a failed keras.saving.load_model in one line: Keras wraps a layer's
    own error in several "could not be deserialized" paragraphs, so the innermost
    "Exception encountered" is the reason and the last class it was deserializing
    (with the layer's name) is where."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    causes = re.findall(r"Exception encountered: (.+)", text)
    if not causes:
        return text.splitlines()[0][:160]
    where = re.findall(r"deserializing class '([^']+)' using config=\{'name': '([^']+)'", text)
    place = f"layer '{where[-1][1]}' ({where[-1][0]}): " if where else ""
    return (place + causes[-1].strip())[:200]


def load_model(path):
    """A trained .keras model (safe mode), or ModelError with the reason."""
    import keras

    from colorization import layers  # noqa: F401  (registers the custom layers)

    if not os.path.isfile(path):
        raise ModelError("model file not found" if not os.path.exists(path)
                         else "model path is not a file")
    import zipfile

    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for it
        raise ModelError("not a Keras model file (a .keras file is a zip archive; this is not)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 (Keras raises many types for a bad file)
        raise ModelError(f"not a loadable Keras model ({load_failure(e)})") from None
    from colorization import systems

    try:
        _, output = systems.of_model(model)
    except systems.UnknownModel as e:
        raise ModelError(str(e)) from None
    problem = output.check(model)
    if problem:
        raise ModelError(problem)
    return model


def _float32_config(value):
    """A layer config with every mixed-precision dtype policy made float32."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and str(
                value.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {k: _float32_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    if isinstance(value, str) and value.startswith("mixed_"):
        return "float32"
    return value


def float32_model(model):
    """The model (same layers, names and weights) with every mixed_float16 or
    mixed_bfloat16 layer made float32; the model itself where none is mixed.

    A model trained under a mixed policy keeps that policy in each layer, so its
    graph computes in bfloat16 or float16: TFLite then has no kernels for its
    convolutions (ERROR_NEEDS_FLEX_OPS), and a CPU without bf16 runs it slowly.
    The exports (serving.py) are built from this twin, whatever the training's
    precision."""
    import keras

    if not any(str(getattr(layer.dtype_policy, "name", "")).startswith("mixed_")
               for layer in model.layers):
        return model
    from colorization import layers  # noqa: F401  (registers the custom layers)

    config = _float32_config(keras.saving.serialize_keras_object(model))
    twin = keras.saving.deserialize_keras_object(config, safe_mode=True)
    twin.set_weights(model.get_weights())
    return twin


def class_names_for(model_path, num_classes, model=None):
    """Scene names the model carries (a converted release's NamedClasses), else
    those model_train.py saved beside it, else 'class k'."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    names = []
    scene = next((layer for layer in (model.layers if model is not None else ())
                  if layer.name == "scene"), None)
    if getattr(scene, "class_names", None):
        names = list(scene.class_names)
    elif os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            names = json.load(f).get("class_names") or []
    if len(names) != num_classes:
        names = [f"class {k}" for k in range(num_classes)]
    return names


# The smallest side Colorizer.predict hands the network (smaller inputs are padded):
# the paper network's output is at 1/2 resolution and its deepest local features at
# 1/8; every system colorizes an 8 x 8 input.
MIN_SIDE = 8


def network_size(h, w, max_side):
    """(h, w) the network sees: the long side capped at max_side (0: no cap)."""
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        return max(1, round(h * s)), max(1, round(w * s))
    return h, w


def lightness(pixels):
    """RGB (H, W, 3) as decoded (uint8, uint16 or float) -> L / 100 (H, W), in strips."""
    out = np.empty(pixels.shape[:2], np.float32)
    rows = strip_rows(pixels.shape[1])
    for top in range(0, pixels.shape[0], rows):
        out[top:top + rows] = _strip_l(pixels[top:top + rows])
    return out / 100.0


def _strip_l(strip):
    """L in [0, 100] of RGB as decoded: the 8-bit fast path, else the float formulas."""
    return rgb8_to_l(strip) if strip.dtype == np.uint8 else rgb_to_lab(to_float(strip))[..., 0]


def network_input(pixels, max_side):
    """RGB as decoded -> the (h, w, 1) L/100 array the network sees.

    Shrinking the 8-bit RGB before the colour conversion keeps a 12-MP photo's
    cost and memory at those of the network's input.
    """
    h, w = network_size(*pixels.shape[:2], max_side)
    if (h, w) != pixels.shape[:2]:
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return lightness(pixels)[..., None]


class Colorizer:
    """A trained model rewired for any size; `predict` runs a batch of same-size inputs.

    Any kind of model train.py writes (Iizuka et al.'s network with either head,
    Zhang et al.'s, Larsson et al.'s, Varga & Szirányi's), decoded by
    systems.decoded_ab01; a classification head by annealed mean at
    `temperature` (T = 1: the mean of the predicted distribution, T -> 0: its mode).
    """

    def __init__(self, model, with_reference=False, temperature=None, saturation=None,
                 split_global=False):
        from colorization import systems
        from colorization.systems import any_size_model

        network, self.output = systems.of_model(model)
        if with_reference and not network.has_global_features:
            raise ModelError(f"this model ({network.title}'s network) has no global features, "
                             "so it cannot take them from a reference image")
        self.global_size = int(model.input_shape[1] or 224)
        self.net = any_size_model(model, self.global_size, with_global_input=with_reference)
        self.with_reference = with_reference
        self.temperature = temperature  # None: ab_bins.TEMPERATURE
        # chroma about gray: 0 gray, 1 the network's own; None: what the model carries
        from colorization.layers import model_saturation

        self.saturation = model_saturation(model) if saturation is None else float(saturation)
        self.num_classes = int(model.output["scene"].shape[-1]) if "scene" in model.output else 0
        # Video (split_global): the network cut where its global features join, so a
        # clip's stabilizer can smooth them between frames (temporal.Stabilizer).
        self.global_encoder = self.decoder = None
        if split_global and network.has_global_features and not with_reference:
            self.global_encoder, self.decoder = network.any_size(
                model, self.output, self.global_size, split=True)

    @staticmethod
    def _padded(gray_batch):
        # Smaller than the network's strides (a 3x3 icon, a 1-px strip): the edge rows
        # and columns are repeated up to MIN_SIDE and the ab map cut back to the share
        # that covers the real pixels.
        x = np.asarray(gray_batch, np.float32)
        h, w = x.shape[1:3]
        return np.pad(x, ((0, 0), (0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)),
                      mode="edge")

    def global_features(self, gray_batch):
        """(n, h, w, 1) L/100 -> (n, k) global feature vectors (split_global only)."""
        from keras import ops

        return ops.convert_to_numpy(self.global_encoder.predict_on_batch(
            self._padded(gray_batch))).astype(np.float32)

    def predict(self, gray_batch, reference=None, features=None):
        """(n, h, w, 1) L/100 -> (ab01 at the network's output resolution (h/2 x w/2
        for Iizuka et al.'s network, h/4 x w/4 for Zhang's and Larsson's, h x w for
        Varga's), class probabilities or None). features: (n, k) global features to
        use instead of the images' own (split_global only)."""
        from keras import ops

        from colorization.systems import decoded_ab01

        h, w = np.shape(gray_batch)[1:3]
        x = self._padded(gray_batch)
        # predict_on_batch runs one compiled function; Keras traces it with
        # reduce_retracing, so the second image size gives a shape-generic trace
        # and later sizes reuse it. Measured on the paper network at 1024x1024
        # (bf16, 2 cores): 0.36 s against 0.60 s eager; each of the first two
        # sizes costs about 0.4 s of tracing.
        if features is not None:
            out = self.decoder.predict_on_batch([x, np.asarray(features, np.float32)])
        elif self.with_reference:
            ref = np.repeat(np.asarray(reference, np.float32)[None], len(x), 0)
            out = self.net.predict_on_batch({"gray": x, "global_gray": ref})
        else:
            out = self.net.predict_on_batch(x)
        ab = saturate_ab01(decoded_ab01(out, self.temperature, gray=x, output=self.output),
                           self.saturation)
        if x.shape[1:3] != (h, w):
            rows = max(1, round(ab.shape[1] * h / x.shape[1]))
            cols = max(1, round(ab.shape[2] * w / x.shape[2]))
            ab = ab[:, :rows, :cols]
        probs = ops.convert_to_numpy(out["scene"]) if "scene" in out else None
        return ab, probs


def upsample_rows(ab_wide, top, rows, full_h):
    """Rows [top, top+rows) of ab_wide (h, W, 2) bilinearly resized to height full_h.

    Separable half-pixel-centre bilinear, the same mapping as cv2.resize's
    INTER_LINEAR, evaluated only for the rows of one strip.
    """
    h = ab_wide.shape[0]
    y = (np.arange(top, top + rows, dtype=np.float32) + 0.5) * (h / full_h) - 0.5
    y = np.clip(y, 0, h - 1)
    y0 = np.floor(y).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    t = (y - y0)[:, None, None]
    r0 = ab_wide[y0]
    r0 += (ab_wide[y1] - r0) * t
    return r0


def colorize_pixels(pixels, ab01, out_dtype=np.uint8):
    """The photo's own full-resolution L + low-resolution ab01 (h, w, 2) -> RGB (H, W, 3).

    The ab map is resized to the full width once (small: h rows), then each strip
    of rows is interpolated vertically, joined with the strip's L and converted,
    so the float temporaries stay the size of one strip.
    """
    full_h, full_w = pixels.shape[:2]
    ab_wide = cv2.resize(np.asarray(ab01, np.float32), (full_w, ab01.shape[0]),
                         interpolation=cv2.INTER_LINEAR)
    scale = 65535.0 if out_dtype == np.uint16 else 255.0
    out = np.empty((full_h, full_w, 3), out_dtype)
    step = strip_rows(full_w)

    def do_strip(top):
        rows = min(step, full_h - top)
        strip = pixels[top:top + rows]
        lab = np.empty(strip.shape, np.float32)
        lab[..., 1:] = model_to_ab(upsample_rows(ab_wide, top, rows, full_h))
        lab[..., 0] = _strip_l(strip)
        if out_dtype == np.uint8:  # the common, fast case
            out[top:top + rows] = lab_to_rgb8(lab)  # keeps the strip's own L
        else:
            rgb = lab_to_rgb(fit_chroma_to_gamut(lab))
            out[top:top + rows] = np.rint(rgb * scale).astype(out_dtype)

    # NumPy releases the GIL in these array operations, so strips run in parallel.
    tops = range(0, full_h, step)
    if len(tops) > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(min(os.cpu_count(), len(tops))) as pool:
            list(pool.map(do_strip, tops))
    else:
        for top in tops:
            do_strip(top)
    return out
