"""Small colour clips the video tests make (CI downloads nothing): a coloured scene
whose disc moves, optionally cut to a second scene, with a sine tone as audio."""

from fractions import Fraction

import numpy as np


def scene_frame(k, w, h, second=False):
    """Frame k: a smooth colour background and a disc moving 2 px per frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if second:  # another place: dark blue-green, a big yellow square
        img = np.stack([20 + 40 * ys / h, 60 + 60 * xs / w, 90 + 0 * xs], -1)
        x0 = 4 + k % max(1, w // 3)
        img[h // 4:3 * h // 4, x0:x0 + w // 3] = (230, 200, 40)
    else:
        img = np.stack([120 + 100 * xs / w, 160 - 60 * ys / h, 200 - 120 * xs / w], -1)
        cx, cy, r = 8 + 2 * k, h / 2, h / 5
        img[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] = (200, 40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_clip(path, frames=24, w=64, h=48, fps=10, audio=True, cut_at=None,
              codec="libx264rgb"):
    """Writes the clip; returns its frames (RGB uint8) as encoded (lossless codecs)."""
    import av

    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=fps)
    video.width, video.height = w, h
    video.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
    if codec.startswith("libx264"):
        video.options = {"qp": "0"}
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
    made = []
    for k in range(frames):
        rgb = scene_frame(k, w, h, second=cut_at is not None and k >= cut_at)
        made.append(rgb)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = k, Fraction(1, fps)
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    if sound is not None:
        samples = int(16000 * frames / fps)
        t = np.arange(samples) / 16000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]),
                                               format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    out.close()
    return made


def audio_samples(path):
    """The decoded audio of a file as one float array (None without audio)."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        parts = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(parts) if parts else np.zeros(0)


def video_frames(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
