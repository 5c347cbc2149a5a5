"""Colorizing a clip: the network per frame, the stabilizer across frames
(temporal.Stabilizer), and the segmented, resumable writer (video_io) — the
library under model_transform.py's video inputs and evaluate.py --video.

Each frame keeps its own full-resolution L (inference.colorize_pixels, as for
photos); the network and the stabilizer work at the network's input size (the
long side capped at --max-side), where the flow is cheap and chroma is already
as sharp as the network makes it.
"""

import json
import os
import shutil

import cv2
import numpy as np

from colorization import temporal, video_io
from colorization.atomic_io import write_json_atomic, write_png_atomic
from colorization.inference import colorize_pixels, network_input

BATCH = 4  # frames per network call (a batch never spans two segments)


class ClipColorizer:
    """A Colorizer and a Stabilizer run over the frames of one clip, in order.

    stabilize False gives the plain per-frame result (--per-frame, the baseline);
    smooth_global and flow_blend turn off either half of the stabilizer."""

    def __init__(self, colorizer, max_side, stabilize=True, smooth_global=True,
                 flow_blend=True, reference=None, **stabilizer_options):
        self.colorizer, self.max_side, self.reference = colorizer, max_side, reference
        self.stabilizer = temporal.Stabilizer(smooth_global, flow_blend, **stabilizer_options) \
            if stabilize else None
        self.global_split = stabilize and smooth_global and colorizer.decoder is not None

    def abs(self, frames, per_frame_too=False):
        """RGB frames (same size) -> [{'stabilized' or 'per_frame': ab01 (h, w, 2)}]
        at the network's input size, in order; the stabilizer moves on by them."""
        x = np.stack([network_input(f, self.max_side) for f in frames])
        h, w = x.shape[1:3]

        def upsampled(ab):
            return [cv2.resize(np.asarray(a, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                    for a in ab]

        out = [{} for _ in frames]
        raw = None
        if per_frame_too or self.stabilizer is None or not self.global_split:
            raw = upsampled(self.colorizer.predict(x, self.reference)[0] if self.reference
                            is not None else self.colorizer.predict(x)[0])
            for o, a in zip(out, raw, strict=True):
                o["per_frame"] = a
        if self.stabilizer is None:
            return out
        l8s = [temporal.l8(xi[..., 0]) for xi in x]
        cuts = [self.stabilizer.is_cut(g) for g in l8s]
        given = raw
        if self.global_split:
            vectors = self.colorizer.global_features(x)
            smoothed = np.stack([self.stabilizer.smoothed(v, c)
                                 for v, c in zip(vectors, cuts, strict=True)])
            given = upsampled(self.colorizer.predict(x, features=smoothed)[0])
        for o, g, ab, cut in zip(out, l8s, given, cuts, strict=True):
            o["stabilized"] = self.stabilizer.step(g, ab, cut, global_given=self.global_split)
        return out

    def state(self):
        return self.stabilizer.state() if self.stabilizer is not None else {}

    def load(self, arrays):
        if self.stabilizer is not None:
            self.stabilizer.load(arrays)


def work_folder(dest):
    """The segments of an unfinished dest, beside it (hidden)."""
    head, tail = os.path.split(os.path.abspath(dest))
    return os.path.join(head, f".{tail}.parts")


def fingerprint(path, model_path, options):
    def stamp(p):
        st = os.stat(p)
        return [os.path.abspath(p), st.st_size, st.st_mtime_ns]

    return {"input": stamp(path), "model": stamp(model_path), "options": options}


class FolderWriter:
    """A frame folder's output: PNG frames (atomic each) in the work folder, the
    folder renamed into place when the last is written."""

    def __init__(self, work, clip):
        self.frames_dir, self.clip, self.k = os.path.join(work, "frames"), clip, 0
        os.makedirs(self.frames_dir, exist_ok=True)

    def write(self, index, rgb):
        write_png_atomic(os.path.join(self.frames_dir, video_io.folder_frame_name(
            self.clip, index)), rgb)

    def close_segment(self):
        self.k += 1
        return self.k - 1, np.zeros(0, np.int64)

    def abandon(self):
        pass


def _save_state(work, k, pts, arrays):
    """After segment k: its frames' timestamps and the stabilizer's state."""
    path = os.path.join(work, f"state_{k:06d}.npz")
    tmp = path + ".tmp.npz"
    np.savez(tmp, segment_pts=pts, **arrays)
    os.replace(tmp, path)


def _segment_pts(work, count):
    out = []
    for k in range(count):
        with np.load(os.path.join(work, f"state_{k:06d}.npz")) as arrays:
            out.append(arrays["segment_pts"])
    return out


def _finished_segments(work, ext, folder):
    """How many segments (from 0, contiguous) have their file and their state."""
    k = 0
    while os.path.exists(os.path.join(work, f"state_{k:06d}.npz")) and (
            folder or os.path.exists(video_io.segment_path(work, k, ext))):
        k += 1
    return k


def _resume_point(work, job, ext, folder):
    """How many segments an earlier run with the same job finished (their work is
    kept); a work folder of another job (another input, model or option) is cleared."""
    done = 0
    job_file = os.path.join(work, "job.json")
    if os.path.isdir(work):
        try:
            with open(job_file, encoding="utf-8") as f:
                same = json.load(f) == job
        except (OSError, ValueError):
            same = False
        if same:
            done = _finished_segments(work, ext, folder)
        else:
            shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    write_json_atomic(job_file, job)
    return done


def _colorize_frames(clip, writer, clip_colorizer, work, skip, segment_frames, progress):
    """Colorizes and writes the frames after `skip`, closing a segment (and saving
    the stabilizer's state) every segment_frames frames; returns the frame count."""
    folder = isinstance(writer, FolderWriter)
    count, batch = 0, []

    def flush():
        if not batch:
            return
        abs_ = clip_colorizer.abs([rgb for _, _, rgb in batch])
        for (index, pts, rgb), ab in zip(batch, abs_, strict=True):
            key = "stabilized" if "stabilized" in ab else "per_frame"
            writer.write(index if folder else pts, colorize_pixels(rgb, ab[key]))
        if progress is not None:
            progress.update(len(batch))
        batch.clear()

    for index, (pts, rgb) in enumerate(clip.frames()):
        count = index + 1
        if index < skip:
            continue
        batch.append((index, pts, rgb))
        end_of_segment = count % segment_frames == 0
        if len(batch) >= BATCH or end_of_segment:
            flush()
        if end_of_segment:
            _save_state(work, *writer.close_segment(), clip_colorizer.state())
    if count < skip:
        raise video_io.VideoError(f"has {count} frames, fewer than the {skip} of the run "
                                  "it resumes; delete " + work)
    flush()
    if count == 0:
        raise video_io.VideoError("has no frames")
    if count % segment_frames:
        _save_state(work, *writer.close_segment(), clip_colorizer.state())
    return count


def colorize_clip(path, dest, clip_colorizer, job, encoding=None,
                  segment_frames=video_io.SEGMENT_FRAMES, progress=None):
    """Colorizes the clip (a video file or a frame folder) at `path` into `dest`,
    resuming from the last finished segment of an earlier run with the same `job`
    fingerprint. Returns {'frames', 'resumed_from', 'audio'}; raises VideoError."""
    folder = os.path.isdir(path)
    ext = "" if folder else os.path.splitext(dest)[1].lower()
    work = work_folder(dest)
    done = _resume_point(work, {**job, "segment_frames": segment_frames}, ext, folder)
    clip = video_io.open_clip(path)
    if done:
        with np.load(os.path.join(work, f"state_{done - 1:06d}.npz")) as arrays:
            clip_colorizer.load({k: v for k, v in arrays.items() if k != "segment_pts"})
    if folder:
        writer = FolderWriter(work, clip)
        writer.k = done
    else:
        writer = video_io.SegmentWriter(work, clip, encoding or video_io.Encoding(), ext,
                                        first_segment=done)
    skip = done * segment_frames
    if progress is not None:
        progress.reset(total=clip.frame_count or None)
        progress.update(min(skip, clip.frame_count or skip))
    try:
        count = _colorize_frames(clip, writer, clip_colorizer, work, skip, segment_frames,
                                 progress)
    except BaseException:
        writer.abandon()
        raise
    finally:
        clip.close()
    if progress is not None and progress.total != count:  # the header's count was wrong
        progress.total = count
        progress.refresh()
    audio = None
    if folder:
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.replace(writer.frames_dir, dest)
    else:  # the segments joined, with the source's audio, then renamed into place
        tmp = os.path.join(work, "joined" + ext)
        segments = _segment_pts(work, -(-count // segment_frames))
        audio = video_io.join_segments(work, segments, clip.time_base, ext, path, tmp)
        os.replace(tmp, dest)
    shutil.rmtree(work, ignore_errors=True)
    return {"frames": count, "resumed_from": skip, "audio": audio}
