"""From a model's colour output to ab: one function for every variant.

    "ab"               Iizuka et al.'s regression, (ab + 128) / 255 as it is
    "ab_bins"          Zhang et al.'s logits over the ab bins: annealed mean (ab_bins.py)
    "lab_hist"         Larsson et al.'s Lab marginals: expectation (histograms.py)
    "hue_chroma_hist"  Larsson et al.'s hue/chroma: median chroma, complex-mean hue,
                       chromatic fading (histograms.py)
    "uv"               Varga & Szirányi's U and V of YUV / 255: back through YUV,
                       with the luma of the gray input (colorspace.ab_from_uv)

Used by colorize.py (model_transform.py), evaluate.py and the training sample
pictures, so a model is decoded the same way everywhere.
"""

import numpy as np
from keras import ops

COLOUR_KEYS = ("ab", "ab_bins", "lab_hist", "hue_chroma_hist", "uv")


def colour_key(outputs):
    """The name of the colour output among a model's outputs (dict or names)."""
    for key in COLOUR_KEYS:
        if key in outputs:
            return key
    raise KeyError(f"no colour output among {sorted(outputs)}")


def decoded_ab01(outputs, temperature=None, gray=None):
    """A model's outputs -> NumPy ab01 ((ab + 128) / 255) at the output's resolution.

    temperature: the annealed mean's T for "ab_bins" (None: ab_bins.TEMPERATURE).
    gray: the network's input L / 100 (n, H, W, 1); "uv" needs it (Y comes from L).
    """
    from colorization.colorspace import ab_to_model

    key = colour_key(outputs)
    if key == "ab":
        return ops.convert_to_numpy(outputs["ab"]).astype(np.float32)
    if key == "ab_bins":
        from colorization import ab_bins

        t = ab_bins.TEMPERATURE if temperature is None else temperature
        ab = ops.convert_to_numpy(ab_bins.annealed_mean(outputs["ab_bins"], ab_bins.gamut_bins(), t))
        return ab_to_model(ab)
    if key == "uv":
        if gray is None:
            raise ValueError("decoding U and V needs the gray input (its L gives Y)")
        return uv01_to_ab01(ops.convert_to_numpy(outputs["uv"]), gray)
    from colorization import histograms

    mode = histograms.output_mode(outputs)
    return ab_to_model(histograms.decode_ab(ops.convert_to_numpy(outputs[key]), mode))


def uv01_to_ab01(uv01, gray):
    """U, V / 255 (n, h, w, 2) and the gray input L / 100 (n, H, W, 1) -> ab01."""
    import cv2

    from colorization.colorspace import ab_from_uv, ab_to_model

    uv01, gray = np.asarray(uv01, np.float32), np.asarray(gray, np.float32)
    out = []
    for uv, g in zip(uv01, gray):
        g = g[..., 0]
        if g.shape != uv.shape[:2]:
            g = cv2.resize(g, (uv.shape[1], uv.shape[0]), interpolation=cv2.INTER_AREA)
        out.append(ab_to_model(ab_from_uv(g * 100.0, uv * 255.0)))
    return np.stack(out)


def target_ab01(key, target, gray):
    """read_input's target for the output `key` -> ab01 (the truth of a sample
    picture): "uv" targets are converted, the others are ab01 already."""
    target = np.asarray(target, np.float32)
    return uv01_to_ab01(target, gray) if key == "uv" else target
