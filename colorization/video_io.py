"""Reading and writing clips, streamed: PyAV (FFmpeg's libraries, bundled in its
wheels) for containers and codecs, a folder of numbered images for frame sequences.

PyAV rather than OpenCV's VideoCapture/VideoWriter: it reads every container and
codec FFmpeg does, gives each frame its own timestamp (variable frame rates stay
exact), copies the audio track packet for packet, and encodes lossless RGB H.264.
OpenCV drops audio and writes only a few codecs.

The output is written in segments (complete files of SEGMENT_FRAMES frames each,
in a work folder beside it) and joined into the final file by copying packets, so
a killed run loses at most one segment and the final file appears whole or not
at all.
"""

import contextlib
import glob
import heapq
import os
import re
from fractions import Fraction

import numpy as np

from colorization.image_io import ImageError, decode_pixels, is_image_name, read_bytes

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".ts", ".mts", ".ogv", ".3gp", ".mxf")
# Frames per segment: a killed run redoes at most this many (10 s at 25 frames/s).
SEGMENT_FRAMES = 250


class VideoError(Exception):
    """The clip cannot be read or written; str(error) is the one-line reason."""


def is_video_name(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _reason(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\[Errno -?\d+\] ", "", text)[:160]


class Clip:
    """A video file's first video stream: size, timing, frames as RGB uint8 (streamed)."""

    def __init__(self, path):
        import av

        self.path = path
        try:
            self.container = av.open(path)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoError(f"not a readable video ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError("has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        if not self.width or not self.height:
            self.close()
            raise VideoError("has a video stream of no size")
        self.time_base = self.stream.time_base or Fraction(1, 25)
        self.rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.frame_count = int(self.stream.frames or 0) or int(
            float(self.stream.duration * self.time_base * self.rate)
            if self.stream.duration else 0)

    def frames(self):
        """(pts in time_base, RGB uint8 (H, W, 3)) of each frame, in order; pts made
        strictly increasing (a stream without timestamps gets the frame rate's)."""
        import av

        last = None
        step = max(1, round(1 / (self.rate * self.time_base))) if self.rate else 1
        try:
            for frame in self.container.decode(self.stream):
                pts = frame.pts
                if pts is None:
                    pts = 0 if last is None else last + step
                if last is not None and pts <= last:
                    pts = last + 1
                last = pts
                yield pts, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise VideoError(f"decoding failed ({_reason(e)})") from None

    def close(self):
        self.container.close()


class FrameFolder:
    """A folder of numbered images (frame_0001.png, ...) read as one clip, in the
    order of the numbers in their names."""

    def __init__(self, path, rate=Fraction(25)):
        names = [n for n in os.listdir(path) if is_image_name(n)]
        if not names:
            raise VideoError("no images in the frame folder")
        self.path, self.rate, self.audio = path, Fraction(rate), None
        self.time_base = 1 / self.rate
        self.names = sorted(names, key=_frame_number)
        self.frame_count = len(self.names)
        first = self._read(self.names[0])
        self.height, self.width = first.shape[:2]

    def _read(self, name):
        try:
            pixels, _ = decode_pixels(read_bytes(os.path.join(self.path, name)))
        except ImageError as e:
            raise VideoError(f"frame {name}: {e}") from None
        if pixels.dtype != np.uint8:
            pixels = (pixels // 257).astype(np.uint8)
        return pixels

    def frames(self):
        for k, name in enumerate(self.names):
            pixels = self._read(name)
            if pixels.shape[:2] != (self.height, self.width):
                raise VideoError(f"frame {name} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                 f"the first {self.width}x{self.height}")
            yield k, pixels

    def close(self):
        pass


def _frame_number(name):
    numbers = re.findall(r"\d+", name)
    return (int(numbers[-1]) if numbers else -1, name)


def open_clip(path):
    return FrameFolder(path) if os.path.isdir(path) else Clip(path)


class Encoding:
    """How the colorized frames are encoded. crf None: lossless RGB H.264
    (libx264rgb, qp 0), so every frame decodes to exactly the RGB that was
    colorized, its L included; else H.264 4:2:0 at that CRF, the small file any
    player or browser plays (its chroma at half resolution, its L within a few
    levels)."""

    def __init__(self, crf=None):
        self.crf = crf

    def add_stream(self, container, clip):
        codec = "libx264rgb" if self.crf is None else "libx264"
        stream = container.add_stream(codec, rate=clip.rate)
        stream.width, stream.height = clip.width, clip.height
        stream.time_base = clip.time_base
        stream.codec_context.time_base = clip.time_base
        odd = clip.width % 2 or clip.height % 2
        if self.crf is None:
            stream.pix_fmt = "rgb24"
            options = {"qp": "0"}
        else:
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"  # 4:2:0 needs even sides
            options = {"crf": str(self.crf)}
        # No B-frames: each segment's packets then come in presentation order with
        # dts = pts, so segments join by copying packets.
        stream.options = {**options, "bframes": "0", "preset": "medium"}
        return stream


def segment_path(work, k, ext):
    return os.path.join(work, f"segment_{k:06d}{ext}")


class SegmentWriter:
    """Encodes frames into numbered segment files; a segment's file is renamed into
    place only once it is complete."""

    def __init__(self, work, clip, encoding, ext, first_segment=0):
        self.work, self.clip, self.encoding, self.ext = work, clip, encoding, ext
        self.k = first_segment
        self.container = self.stream = None
        self.pts = []  # the current segment's frames' timestamps (clip.time_base)

    def _open(self):
        import av

        self.tmp = segment_path(self.work, self.k, ".part" + self.ext)
        try:
            self.container = av.open(self.tmp, "w", format=_format_of(self.ext))
            self.stream = self.encoding.add_stream(self.container, self.clip)
        except (av.error.FFmpegError, ValueError) as e:
            self.abandon()
            raise VideoError(f"cannot write {self.ext or 'a file without an extension'} "
                             f"video ({_reason(e)}); give --out a name ending .mp4, .mkv, "
                             ".mov or .avi") from None

    def write(self, pts, rgb):
        import av

        if self.container is None:
            self._open()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, self.clip.time_base
        self.pts.append(pts)
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except av.error.FFmpegError as e:
            raise VideoError(f"encoding failed ({_reason(e)})") from None

    def close_segment(self):
        """Flushes and closes the current segment; returns (its number, its frames'
        timestamps)."""
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, segment_path(self.work, self.k, self.ext))
        self.container = None
        done, pts, self.k, self.pts = self.k, np.asarray(self.pts, np.int64), self.k + 1, []
        return done, pts

    def abandon(self):
        if self.container is not None:
            with contextlib.suppress(Exception):  # a half-written file is removed anyway
                self.container.close()
            self.container = None
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def _format_of(ext):
    return {".mkv": "matroska", ".m4v": "mp4", ".ts": "mpegts", ".mts": "mpegts",
            ".ogv": "ogg", ".3gp": "3gp", ".webm": "webm", ".mpg": "mpeg",
            ".mpeg": "mpeg"}.get(ext.lower(), ext.lower().lstrip("."))


def join_segments(work, pts, time_base, ext, source_path, dest_tmp):
    """The segments' video packets and the source's audio track, interleaved by
    time, muxed into dest_tmp. pts: each segment's frames' timestamps in
    time_base, given back to its packets (a container may store them rounded;
    without B-frames a segment has one packet per frame, in order). The audio is
    copied packet for packet where the container takes its codec, else re-encoded
    to AAC. Returns what was done with
    the audio ("copied", "re-encoded to AAC" or None)."""
    import av

    out = av.open(dest_tmp, "w", format=_format_of(ext))
    inputs = [av.open(segment_path(work, k, ext)) for k in range(len(pts))]
    source = av.open(source_path) if source_path else None
    try:
        template = inputs[0].streams.video[0]
        video_out = out.add_stream_from_template(template)
        video_out.time_base = time_base
        audio_in = source.streams.audio[0] if source is not None and source.streams.audio \
            else None
        audio_out, audio_how = None, None
        if audio_in is not None and _accepts(ext, audio_in.codec_context.name):
            audio_out, audio_how = out.add_stream_from_template(audio_in), "copied"
        elif audio_in is not None:
            audio_out = out.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
            audio_out.layout = audio_in.codec_context.layout.name
            audio_how = "re-encoded to AAC"

        def video_packets():
            for container, stamps in zip(inputs, pts, strict=True):
                packets = [p for p in container.demux(container.streams.video[0])
                           if p.dts is not None]
                if len(packets) != len(stamps):
                    raise VideoError(f"a segment has {len(packets)} packets for "
                                     f"{len(stamps)} frames")
                for packet, stamp in zip(packets, stamps, strict=True):
                    packet.pts = packet.dts = int(stamp)
                    packet.time_base = time_base
                    yield float(stamp * time_base), 0, packet

        def audio_packets():
            if audio_how == "copied":
                for packet in source.demux(audio_in):
                    if packet.dts is not None and packet.pts is not None:
                        yield float(packet.pts * packet.time_base), 1, packet
            elif audio_in is not None:
                for frame in source.decode(audio_in):
                    for packet in audio_out.encode(frame):
                        yield float((packet.pts or 0) * packet.time_base), 1, packet
                for packet in audio_out.encode(None):
                    yield float((packet.pts or 0) * packet.time_base), 1, packet

        counter = iter(range(1 << 62))  # ties keep their order, never compare packets
        merged = heapq.merge(((t, s, next(counter), p) for t, s, p in video_packets()),
                             ((t, s, next(counter), p) for t, s, p in audio_packets()))
        for _, stream, _, packet in merged:
            packet.stream = video_out if stream == 0 else audio_out
            out.mux(packet)
    finally:
        out.close()
        for container in inputs:
            container.close()
        if source is not None:
            source.close()
    return audio_how


# Audio codecs each container of ours takes as they are (else they are re-encoded).
_AUDIO_OK = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"},
    ".m4v": {"aac", "mp3", "ac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be"},
    ".webm": {"opus", "vorbis"},
}


def _accepts(ext, codec):
    allowed = _AUDIO_OK.get(ext.lower())
    return allowed is None or codec in allowed


def folder_frame_name(clip, index, ext=".png"):
    """The output name of a frame folder's frame `index`: its own name, as PNG
    where its format cannot hold the exact result."""
    stem, own = os.path.splitext(clip.names[index])
    return stem + (own if own.lower() in (".png", ".tif", ".tiff", ".bmp") else ext)


def leftover_segments(work, ext):
    return sorted(glob.glob(os.path.join(work, "segment_*" + ext)))
