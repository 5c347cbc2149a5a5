"""Varga & Szirányi 2016's output space: U and V of YUV / 255 ("uv"), at the
input's full resolution, trained by cross-entropy; ab comes back through YUV with
the luma of the gray input (colorspace.ab_from_uv). Its network is hypercolumn.py's
Varga variant; systems.py lists both.
"""

import keras
import numpy as np

from colorization.seam import OutputSpace


def uv01_to_ab01(uv01, gray):
    """U, V / 255 (n, h, w, 2) and the gray input L / 100 (n, H, W, 1) -> ab01."""
    import cv2

    from colorization.colorspace import ab_from_uv, ab_to_model

    uv01, gray = np.asarray(uv01, np.float32), np.asarray(gray, np.float32)
    out = []
    for uv, g in zip(uv01, gray, strict=True):
        g = g[..., 0]
        if g.shape != uv.shape[:2]:
            g = cv2.resize(g, (uv.shape[1], uv.shape[0]), interpolation=cv2.INTER_AREA)
        out.append(ab_to_model(ab_from_uv(g * 100.0, uv * 255.0)))
    return np.stack(out)


class UV(OutputSpace):
    """Varga & Szirányi's output: U and V of YUV / 255 by a sigmoid, trained by
    cross-entropy; ab comes back through YUV with the luma of the gray input."""

    name = "uv"
    title = "U and V of YUV at full resolution"
    target = "uv"
    activation = "sigmoid"

    def channels(self):
        return 2

    def loss(self, summary=None):
        # Varga & Szirányi's cross-entropy between the target and predicted U, V in
        # [0, 1]. The seed writes it as -sum UV log UV_p, which alone is smallest at
        # UV_p = 1 whatever the target; with the (1 - UV) log(1 - UV_p) term it is
        # the binary cross-entropy, smallest at UV_p = UV.
        del summary
        return keras.losses.BinaryCrossentropy(name="uv_xent")

    def decode(self, value, temperature=None, gray=None):
        del temperature
        if gray is None:
            raise ValueError("decoding U and V needs the gray input (its L gives Y)")
        return uv01_to_ab01(keras.ops.convert_to_numpy(value), gray)

    def decode_graph(self, value, temperature=None, gray=None):
        del temperature
        if gray is None:
            raise ValueError("decoding U and V needs the gray input (its L gives Y)")
        from colorization import graph_colour

        # Varga's output is at the input's resolution (stride 1), so gray needs no resize.
        ab = graph_colour.ab_from_uv(keras.ops.cast(gray, "float32")[..., 0] * 100.0,
                                     keras.ops.cast(value, "float32") * 255.0)
        return (ab + 128.0) / 255.0

    def target_ab01(self, target, gray):
        return uv01_to_ab01(target, gray)


UV_OUTPUT = UV()
