"""The authors' published models, fetched by name (convert_model.py --fetch NAME):
each file downloaded into a cache, resumed where a download was cut (HTTP range),
checked against the checksum the authors publish, converted, and kept as
CACHE/NAME.keras with a card saying where it came from.

Only the download goes through this module; the conversion is convert_model.py's.
"""

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

CHUNK = 1 << 20
RETRIES = 3  # a cut download is resumed this many times before giving up


class FetchError(Exception):
    """A release cannot be fetched; str(error) is the one-line reason."""


@dataclass(frozen=True)
class Source:
    url: str
    md5: str = ""  # what Iizuka et al.'s download scripts check (with SHA-1 beside it)
    sha1: str = ""
    sha256_prefix: str = ""  # torch.hub's convention: the start of the SHA-256 in the name
    size_mb: float = 0.0

    @property
    def name(self):
        return self.url.rsplit("/", 1)[-1]

    def checked_by(self):
        kinds = [k for k, v in (("MD5", self.md5), ("SHA-1", self.sha1),
                                ("SHA-256 prefix", self.sha256_prefix)) if v]
        return " and ".join(kinds) if kinds else "none published (size and conversion only)"


@dataclass(frozen=True)
class Release:
    name: str
    title: str
    files: tuple
    licence: str
    page: str
    script: str  # where the URL and checksum are published

    @property
    def size_mb(self):
        return sum(f.size_mb for f in self.files)


_ZHANG_CAFFE = "https://raw.githubusercontent.com/richzhang/colorization/caffe/"
RELEASES = {r.name: r for r in (
    Release("iizuka2016", "Iizuka et al. 2016, trained on Places (205 scene classes)",
            (Source("http://hi.cs.waseda.ac.jp/~iizuka/data/colornet.t7",
                    md5="c88fa2bb6dc9f942a492a7dc7009b966",
                    sha1="d397faf0b63a173680824474bfeab4725c375ca2", size_mb=663),),
            "CC BY-NC-SA 4.0 (non-commercial)",
            "https://github.com/satoshiiizuka/siggraph2016_colorization",
            "download_model.sh"),
    Release("iizuka2016-imagenet", "Iizuka et al. 2016, trained on ImageNet (no scene head)",
            (Source("http://iizuka.cs.tsukuba.ac.jp/data/colornet_imagenet.t7",
                    md5="09eddf45cd1b085fcb4cc880ba448072",
                    sha1="36b3f03dab74262552dd63ee16b4e1df842a680f", size_mb=665),),
            "CC BY-NC-SA 4.0 (non-commercial)",
            "https://github.com/satoshiiizuka/siggraph2016_colorization",
            "download_model_imagenet.sh"),
    Release("zhang2016", "Zhang et al. 2016, the PyTorch release (ImageNet)",
            (Source("https://colorizers.s3.us-east-2.amazonaws.com/"
                    "colorization_release_v2-9b330a0b.pth", sha256_prefix="9b330a0b",
                    size_mb=129),),
            "BSD 2-Clause", "https://github.com/richzhang/colorization",
            "colorizers/eccv16.py (torch.hub, check_hash=True)"),
    Release("zhang2016-caffe", "Zhang et al. 2016, the Caffe release with class rebalancing",
            (Source("http://eecs.berkeley.edu/~rich.zhang/projects/2016_colorization/files/"
                    "demo_v2/colorization_release_v2.caffemodel", size_mb=129),
             Source(_ZHANG_CAFFE + "models/colorization_deploy_v2.prototxt", size_mb=0.01),
             Source(_ZHANG_CAFFE + "resources/pts_in_hull.npy", size_mb=0.005)),
            "BSD 2-Clause", "https://github.com/richzhang/colorization",
            "models/fetch_release_models.sh"),
)}


def default_cache():
    """$COLORIZATION_CACHE, else $XDG_CACHE_HOME/colorization, else ~/.cache/colorization."""
    if os.environ.get("COLORIZATION_CACHE"):
        return os.environ["COLORIZATION_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "colorization")


def model_path(name, cache=None):
    return os.path.join(cache or default_cache(), f"{name}.keras")


def listing():
    """Lines for --list: name, size, licence, source."""
    lines = []
    for r in RELEASES.values():
        lines.append(f"{r.name:20s} {r.size_mb:6.0f} MB  {r.title}")
        lines.append(f"{'':20s} {'':9s} licence {r.licence}; {r.page} ({r.script}); "
                     f"checked by {r.files[0].checked_by()}")
    return lines


def _digests(path):
    md5, sha1, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha1(
        usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            md5.update(block)
            sha1.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha1": sha1.hexdigest(), "sha256": sha256.hexdigest()}


def verify(source, path):
    """FetchError if the file does not have the published checksum."""
    got = _digests(path)
    for kind, want, have in (("MD5", source.md5, got["md5"]), ("SHA-1", source.sha1, got["sha1"]),
                             ("SHA-256", source.sha256_prefix, got["sha256"][:len(
                                 source.sha256_prefix)])):
        if want and have != want:
            raise FetchError(f"{source.name}: {kind} {have} is not the published {want}; the "
                             "download was damaged or the file changed, and it was removed "
                             "(run the same command again to download it anew)")
    return got


def _url(source, mirror):
    return mirror.rstrip("/") + "/" + source.name if mirror else source.url


def _open(url, start):
    request = urllib.request.Request(url, headers={"User-Agent": "colorization-fetch/1"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=60)


def _reason(error, url):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason} from {url}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot reach {url} ({getattr(error.reason, 'strerror', None) or error.reason})"
    return f"{url}: {error}"


def download(source, folder, mirror=None, progress=None):
    """The file in folder (downloaded, or already there and checked); a cut download
    is kept as NAME.part and resumed with an HTTP range request."""
    path = os.path.join(folder, source.name)
    if os.path.exists(path):
        return path
    os.makedirs(folder, exist_ok=True)
    part = path + ".part"
    url = _url(source, mirror)
    for attempt in range(RETRIES + 1):
        start = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            response = _open(url, start)
        except urllib.error.HTTPError as e:
            if e.code == 416 and start:  # the range starts at the end: it is all here
                break
            raise FetchError(_reason(e, url)) from None
        except (urllib.error.URLError, OSError) as e:
            raise FetchError(_reason(e, url)) from None
        with response:
            if start and response.status != 206:  # the server ignores ranges: from 0
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            if progress is not None:
                progress.reset(total=total)
                progress.set_description(source.name)
                progress.update(start)
            try:
                with open(part, "ab" if start else "wb") as f:
                    for block in iter(lambda r=response: r.read(CHUNK), b""):
                        f.write(block)
                        if progress is not None:
                            progress.update(len(block))
            except (OSError, http.client.HTTPException) as e:
                if getattr(e, "errno", None) == 28:
                    raise FetchError(f"the disk is full at {folder}; {source.name}.part is "
                                     "kept, and the same command resumes it") from None
                if attempt < RETRIES:
                    time.sleep(1 + attempt)
                    continue
                raise FetchError(f"the download of {url} was cut {RETRIES + 1} times; "
                                 f"{source.name}.part is kept, the same command resumes "
                                 "it") from None
            got = os.path.getsize(part)
            if total is not None and got < total:
                if attempt < RETRIES:
                    continue
                raise FetchError(f"the download of {url} stopped at {got:,} of {total:,} "
                                 "bytes; the same command resumes it")
        break
    try:
        verify(source, part)
    except FetchError:
        os.remove(part)
        raise
    os.replace(part, path)
    return path


def card_text(release, digests, summary):
    converted = (f"Converted by `python convert_model.py --fetch {release.name}` on "
                 f"{time.strftime('%Y-%m-%d')}: {summary}.")
    page = (f"- Authors' page: {release.page} (the URLs and checksums are from "
            f"`{release.script}`)")
    lines = [f"# {release.name}: {release.title}", "", converted, "", page,
             f"- Licence of the weights: {release.licence}", "",
             "| file | URL | checked by | SHA-256 of the file as fetched |", "|---|---|---|---|"]
    for source in release.files:
        lines.append(f"| {source.name} | {source.url} | {source.checked_by()} | "
                     f"{digests[source.name]['sha256']} |")
    return "\n".join(lines) + "\n"
