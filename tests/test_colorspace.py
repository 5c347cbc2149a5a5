import cv2
import numpy as np
import pytest
from skimage import color

from colorization import colorspace


def in_gamut_rgb(rng, n=4096):
    return rng.uniform(0, 1, (n, 1, 3)).astype(np.float32)


def test_rgb_to_lab_matches_skimage():
    rgb = in_gamut_rgb(np.random.default_rng(0))
    np.testing.assert_allclose(colorspace.rgb_to_lab(rgb), color.rgb2lab(rgb), atol=0.01)


def test_lab_to_rgb_matches_skimage_and_inverts():
    rgb = in_gamut_rgb(np.random.default_rng(1))
    lab = color.rgb2lab(rgb)
    np.testing.assert_allclose(colorspace.lab_to_rgb(lab), color.lab2rgb(lab), atol=1e-3)
    np.testing.assert_allclose(colorspace.lab_to_rgb(colorspace.rgb_to_lab(rgb)), rgb, atol=1e-4)


@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),       # D65 white
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),   # sRGB red, from published tables
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
])
def test_known_values(rgb, lab):
    got = colorspace.rgb_to_lab(np.array([[rgb]], np.float32))[0, 0]
    np.testing.assert_allclose(got, lab, atol=0.02)


def test_lab8_is_opencv_convention():
    lab = np.array([[[100.0, -128.0, 127.0], [50.0, 0.0, -10.4]]], np.float32)
    np.testing.assert_array_equal(colorspace.lab_to_lab8(lab), [[[255, 0, 255], [128, 128, 118]]])
    np.testing.assert_allclose(colorspace.lab8_to_lab([[[255, 0, 255]]]), [[[100, -128, 127]]])


def test_lab8_round_trip_within_quantisation():
    rgb = in_gamut_rgb(np.random.default_rng(2))
    lab = colorspace.rgb_to_lab(rgb)
    back = colorspace.lab8_to_lab(colorspace.lab_to_lab8(lab))
    assert np.abs(back[..., 0] - lab[..., 0]).max() <= 100 / 255 / 2 + 1e-4
    assert np.abs(back[..., 1:] - lab[..., 1:]).max() <= 0.5 + 1e-4


def test_model_scale_is_lab8_over_255():
    lab8 = np.array([[[200, 30, 220]]], np.uint8)
    lab = colorspace.lab8_to_lab(lab8)
    assert np.allclose(lab[..., 0] / 100, lab8[..., 0] * colorspace.LAB8_TO_MODEL)
    assert np.allclose(colorspace.ab_to_model(lab[..., 1:]),
                       lab8[..., 1:] * colorspace.LAB8_TO_MODEL)
    assert np.allclose(colorspace.model_to_ab(colorspace.ab_to_model(lab[..., 1:])), lab[..., 1:])


def test_compose_rgb_upsamples_ab_to_l():
    rgb = in_gamut_rgb(np.random.default_rng(3), 64 * 48).reshape(64, 48, 3)
    lab = colorspace.rgb_to_lab(rgb)
    out = colorspace.compose_rgb(lab[..., :1] / 100, colorspace.ab_to_model(lab[..., 1:]))
    np.testing.assert_allclose(out, rgb, atol=1e-3)
    half = colorspace.compose_rgb(lab[..., :1] / 100, colorspace.ab_to_model(lab[::2, ::2, 1:]))
    assert half.shape == (64, 48, 3)


@pytest.mark.slow
def test_rgb8_table_equals_the_formulas_for_every_colour():
    # The builder's lookup table must be exactly the float conversion: check all
    # 2^24 colours, one red value at a time.
    gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
    for r in range(256):
        rgb8 = np.concatenate([np.full((256, 256, 1), r), gb], -1).astype(np.uint8)
        table = colorspace.rgb8_to_lab8(rgb8, use_table=True)
        formulas = colorspace.rgb8_to_lab8(rgb8, use_table=False)
        assert np.array_equal(table, formulas), f"red={r}"
    assert np.array_equal(formulas, colorspace.rgb_to_lab8(rgb8 / np.float32(255.0)))


def test_fit_chroma_to_gamut_keeps_lightness_and_hue():
    rng = np.random.default_rng(4)
    lab = np.stack([rng.uniform(5, 95, 2000), rng.uniform(-120, 120, 2000),
                    rng.uniform(-120, 120, 2000)], -1).astype(np.float32)
    fitted = colorspace.fit_chroma_to_gamut(lab)
    np.testing.assert_array_equal(fitted[:, 0], lab[:, 0])  # L untouched
    # Hue kept: ab only scaled down, by a factor in [0, 1].
    scale = np.hypot(*fitted[:, 1:].T) / np.hypot(*lab[:, 1:].T)
    assert scale.min() >= 0 and scale.max() <= 1 + 1e-6
    np.testing.assert_allclose(fitted[:, 1:], lab[:, 1:] * scale[:, None], atol=1e-3)
    # The result is (nearly) in gamut, so converting back gives the same L.
    back = colorspace.rgb_to_lab(colorspace.lab_to_rgb(fitted))
    assert np.abs(back[:, 0] - lab[:, 0]).max() < 0.1
    assert (scale < 0.99).mean() > 0.3  # the test does exercise out-of-gamut colours
    # In-gamut colours are returned unchanged.
    inside = colorspace.rgb_to_lab(in_gamut_rgb(rng, 500)).reshape(-1, 3)
    np.testing.assert_allclose(colorspace.fit_chroma_to_gamut(inside), inside, atol=1e-5)


def test_fast_output_paths_match_the_formulas():
    rng = np.random.default_rng(5)
    rgb8 = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    reference = colorspace.rgb_to_lab(rgb8 / np.float32(255.0))
    np.testing.assert_allclose(colorspace.rgb8_to_l(rgb8), reference[..., 0], atol=1e-3)
    # In-gamut colours come back as the same bytes; out-of-gamut ones as the
    # float path with the same chroma fitting gives, within one rounding step.
    assert np.array_equal(colorspace.lab_to_rgb8(reference.copy()), rgb8)
    loud = reference.copy()
    loud[..., 1:] *= 1.7
    slow = colorspace.to_uint8(colorspace.lab_to_rgb(colorspace.fit_chroma_to_gamut(loud)))
    assert np.abs(colorspace.lab_to_rgb8(loud.copy()).astype(int) - slow).max() <= 1


def test_yuv_matches_opencv_ycrcb_and_round_trips():
    """Varga & Szirányi's YUV is JPEG's full-range YCbCr: OpenCV is the reference."""
    rng = np.random.default_rng(5)
    rgb8 = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb8[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                   [128, 128, 128], [255, 255, 0], [0, 255, 255]]
    yuv = colorspace.rgb_to_yuv(rgb8.astype(np.float32) / 255.0)
    ycrcb = cv2.cvtColor(rgb8, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    # OpenCV's Cr and Cb are V and U. It rounds Y to 8 bits before computing them
    # from R - Y and B - Y, then rounds again: up to 0.5 * 0.713 + 0.5 apart.
    np.testing.assert_allclose(yuv[..., 0], ycrcb[..., 0], atol=0.51)
    np.testing.assert_allclose(yuv[..., 1], ycrcb[..., 2], atol=0.9)
    np.testing.assert_allclose(yuv[..., 2], ycrcb[..., 1], atol=0.9)
    back = colorspace.yuv_to_rgb(yuv)
    np.testing.assert_allclose(back, rgb8 / 255.0, atol=1e-5)
    assert yuv[0, 5, 1] == pytest.approx(128.0, abs=1e-3)  # gray has U = V = 128


def test_uv_targets_and_their_decoding():
    lab = np.array([[[60.0, 0.0, 0.0], [50.0, 40.0, 30.0], [70.0, -30.0, 50.0]]], np.float32)
    lab8 = colorspace.lab_to_lab8(lab)
    uv01 = colorspace.lab8_to_uv01(lab8)
    expected = colorspace.rgb_to_yuv(colorspace.lab8_to_rgb(lab8))[..., 1:] / 255.0
    np.testing.assert_allclose(uv01, expected, atol=1e-6)
    # Gray stays gray; a colour comes back near its own ab (Y is taken from L, not
    # from the colour, so only near).
    ab = colorspace.ab_from_uv(colorspace.lab8_to_lab(lab8)[..., 0], uv01 * 255.0)
    np.testing.assert_allclose(ab[0, 0], [0.0, 0.0], atol=0.6)
    true_ab = colorspace.lab8_to_lab(lab8)[..., 1:]
    assert np.hypot(*(ab[0, 1:] - true_ab[0, 1:]).T).max() < 12.0
    assert np.all(np.sign(ab[0, 1:]) == np.sign(true_ab[0, 1:]))
