"""Converts the authors' published colorization models into this project's .keras
networks, recognising each file by its content.

    python convert_model.py colorization_deploy_v2.prototxt \\
        colorization_release_v2.caffemodel pts_in_hull.npy --out zhang-caffe.keras
    python model_transform.py photo.jpg --model zhang-caffe.keras

    python convert_model.py colornet.t7 --out iizuka-places.keras
    python model_transform.py photo.jpg --model iizuka-places.keras --reference sunset.jpg

    python convert_model.py --list                  # the releases it can fetch
    python convert_model.py --fetch iizuka2016      # download, check, convert, cache
    python model_transform.py photo.jpg --model iizuka2016

Supported: Zhang et al. 2016's Caffe release (the caffemodel, with or without
rebalancing; the prototxt is optional and checked when given; pts_in_hull.npy
gives the 313 bins), their PyTorch release (colorization_release_v2-9b330a0b.pth,
read without torch and without running the pickle's code) and Iizuka et al.
2016's Torch 7 release (colornet.t7, colornet_imagenet.t7; read with the torchfile
package). A file that is none of these, damaged or truncated gives one line and
exit 2, and nothing is written.
"""

import argparse
import os
import sys

from colorization import interrupts, quiet

quiet.install()  # before TensorFlow's import: its start-up lines stay off stderr

NUMPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def kind_of(path, head):
    """What a source file is, from its first bytes: caffemodel, prototxt, npy,
    torch7, pytorch or unknown."""
    if head.startswith(NUMPY_MAGIC):
        return "npy"
    from colorization.pytorch_format import LEGACY_HEAD  # torch.save before PyTorch 1.6

    if head.startswith((ZIP_MAGIC, LEGACY_HEAD)):
        return "pytorch"
    # Torch 7's binary serialization starts with an int32 type tag: 3 a table, 4 a
    # torch object (colorize.lua's file is a table of model and mean).
    if len(head) >= 8 and head[:4] in (b"\x03\x00\x00\x00", b"\x04\x00\x00\x00") and (
            path.endswith(".t7") or head[4:8] in (b"\x01\x00\x00\x00", b"\x02\x00\x00\x00")):
        return "torch7"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and ("layer" in text or "name:" in text) and "{" in text:
        return "prototxt"
    if head[:1] in (b"\x0a", b"\xa2"):  # field 1 (name) or 100 (layer) of a NetParameter
        return "caffemodel"
    return "unknown"


def read_class_names(path):
    """Scene names, one a line in output order: plain names, or the Places205 list's
    '/a/abbey 0' lines (the path's last parts, ordered by the index)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the class names ({e})") from None
    rows = [line.rsplit(None, 1) for line in lines]
    if rows and all(len(r) == 2 and r[1].isdigit() for r in rows):
        rows.sort(key=lambda r: int(r[1]))
        if [int(r[1]) for r in rows] != list(range(len(rows))):
            raise ValueError(f"{path}: the class indices are not 0..{len(rows) - 1}")
        lines = [r[0] for r in rows]
    return [name[3:] if len(name) > 3 and name[0] == "/" and name[2] == "/" else name
            for name in lines]


def convert(sources, out, class_names=()):
    """Converts; returns the summary line. ValueError (CaffeError) with the reason."""
    from colorization import caffe_format
    from colorization.published import read_pts, zhang_caffe_model

    found = {}
    for path in sources:
        with open(path, "rb") as f:
            data = f.read()
        kind = kind_of(path, data[:64])
        if kind in ("torch7", "pytorch"):
            release = ("Iizuka et al.'s Torch 7" if kind == "torch7"
                       else "Zhang et al.'s PyTorch")
            if len(sources) > 1:
                raise ValueError(f"{path}: {release} release is one file; give it alone")
            return (_convert_torch7(path, out, class_names) if kind == "torch7"
                    else _convert_pytorch(path, out))
        if kind == "unknown":
            raise ValueError(f"{path}: not a caffemodel, prototxt, .npy, Torch 7 or PyTorch "
                             "file")
        if kind in found:
            raise ValueError(f"two {kind} files given ({found[kind][0]} and {path})")
        found[kind] = (path, data)
    if class_names:
        raise ValueError("--class-names is for a scene head; Zhang et al.'s network has none")
    if "caffemodel" not in found:
        raise ValueError("no .caffemodel among the sources (the weights of Zhang et al.'s "
                         "release)")

    def parsed(kind, parse):
        path, data = found[kind]
        try:
            return parse(data)
        except caffe_format.CaffeError as e:
            raise ValueError(f"{path}: {e}") from None

    net = parsed("caffemodel", caffe_format.read_caffemodel)
    deploy = (parsed("prototxt", lambda d: caffe_format.read_prototxt(
        d.decode("utf-8", "replace"))) if "prototxt" in found else None)
    pts = parsed("npy", read_pts) if "npy" in found else None
    try:
        model, info = zhang_caffe_model(net, deploy, pts)
    except caffe_format.CaffeError as e:
        raise ValueError(f"{found['caffemodel'][0]}: {e}") from None
    from colorization.atomic_io import replace_atomic

    replace_atomic(out, model.save, suffix=".keras")
    return (f"wrote {out}: Zhang et al. 2016 (Caffe release), width {info['width']:g}, "
            f"{info['bins']} ab bins, annealed mean at T = {info['temperature']:.4f}")


def _convert_pytorch(path, out):
    from colorization.atomic_io import replace_atomic
    from colorization.caffe_format import CaffeError
    from colorization.published import zhang_pytorch_model
    from colorization.pytorch_format import PyTorchError, read_state_dict

    try:
        model, info = zhang_pytorch_model(read_state_dict(path))
    except (PyTorchError, CaffeError) as e:
        raise ValueError(f"{path}: {e}") from None
    replace_atomic(out, model.save, suffix=".keras")
    return (f"wrote {out}: Zhang et al. 2016 (PyTorch release), width {info['width']:g}, "
            f"{info['bins']} ab bins, softmax mean (T = {info['temperature']:g})")


def _convert_torch7(path, out, class_names=()):
    from colorization.atomic_io import replace_atomic
    from colorization.published_torch import iizuka_torch_model
    from colorization.torch7_format import Torch7Error, read

    try:
        model, info = iizuka_torch_model(read(path), class_names)
    except Torch7Error as e:
        raise ValueError(f"{path}: {e}") from None
    replace_atomic(out, model.save, suffix=".keras")
    head = f"a {info['classes']}-class scene head" if info["classes"] else "no scene head"
    return (f"wrote {out}: Iizuka et al. 2016 (Torch 7 release), width {info['width']:g}, "
            f"{head}, luma mean {info['mean']:.4f}")


def fetch_release(name, cache, mirror=None, out=None):
    """Downloads (or finds in the cache), checks and converts a published release;
    returns the summary line. FetchError or ValueError with the reason."""
    import shutil

    from tqdm import tqdm

    from colorization import fetch
    from colorization.atomic_io import write_text_atomic

    release = fetch.RELEASES[name]
    folder = os.path.join(cache, "downloads", name)
    paths, digests = [], {}
    for source in release.files:
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                  dynamic_ncols=True, miniters=1) as bar:
            paths.append(fetch.download(source, folder, mirror, progress=bar))
        digests[source.name] = fetch._digests(paths[-1])
    target = fetch.model_path(name, cache)
    if os.path.exists(target):
        summary = f"{target} is already converted (delete it to convert again)"
    else:
        summary = convert(paths, target)
        write_text_atomic(os.path.splitext(target)[0] + ".md",
                          fetch.card_text(release, digests, summary.removeprefix("wrote ")))
    if out:
        shutil.copyfile(target, out)
        summary += f"; copied to {out}"
    return summary + (f"\nuse it: python model_transform.py photo.jpg --model {name}"
                      f"  (licence: {release.licence})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    quiet.add_verbose_flag(p)
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="the release's files: caffemodel, prototxt and pts_in_hull.npy, or "
                   "the .pth (Zhang et al.); colornet.t7 (Iizuka et al.)")
    p.add_argument("--out", metavar="NAME.keras", help="the converted model (with --fetch: a "
                   "copy of the cached one)")
    p.add_argument("--fetch", metavar="NAME",
                   help="download a published release by name (--list), check its checksum, "
                        "convert it and keep it in the cache as NAME.keras")
    p.add_argument("--list", action="store_true", help="the releases --fetch knows")
    p.add_argument("--cache", metavar="DIR", help="where fetched releases are kept (default: "
                   "$COLORIZATION_CACHE, else ~/.cache/colorization)")
    p.add_argument("--mirror", metavar="URL",
                   help="fetch each file as URL/FILENAME instead of from the authors' server "
                        "(the checksums still apply)")
    p.add_argument("--class-names", metavar="FILE",
                   help="the scene head's class names for --top-k, one a line (or the "
                   "Places205 list's '/a/abbey 0' lines); Iizuka et al.'s release")
    args = p.parse_args(argv)
    from colorization import fetch

    if args.list:
        print("\n".join(fetch.listing()))
        return 0
    if args.fetch:
        if args.sources:
            p.error("--fetch downloads its own files; give no SOURCE with it")
        if args.fetch not in fetch.RELEASES:
            p.error(f"unknown release {args.fetch!r}; --list shows {', '.join(fetch.RELEASES)}")
        if args.out and not args.out.endswith(".keras"):
            p.error("--out must end in .keras")
        try:
            print(fetch_release(args.fetch, args.cache or fetch.default_cache(), args.mirror,
                                args.out))
        except (fetch.FetchError, ValueError) as e:
            print(f"convert_model.py: error: {e}", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"convert_model.py: error: {e.strerror or e} ({e.filename or args.cache}); "
                  "nothing was written under a final name", file=sys.stderr)
            return 1
        return 0
    if not args.sources or not args.out:
        p.error("give the release's files and --out NAME.keras, or --fetch NAME (--list)")
    if not args.out.endswith(".keras"):
        p.error("--out must end in .keras")
    if os.path.isdir(args.out):
        p.error(f"--out {args.out} is a folder")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        p.error(f"--out {args.out}: its folder does not exist")
    for path in args.sources:
        if not os.path.isfile(path):
            why = ("is a folder" if os.path.isdir(path) else "not a regular file"
                   if os.path.exists(path) else "no such file")
            print(f"convert_model.py: error: {path}: {why}", file=sys.stderr)
            return 2
    try:
        names = read_class_names(args.class_names) if args.class_names else ()
        print(convert(args.sources, args.out, names))
    except ValueError as e:
        print(f"convert_model.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder without write permission
        print(f"convert_model.py: error: cannot write {args.out} ({e.strerror or e}); nothing "
              "was written", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(interrupts.run(main, "convert_model.py",
                            "nothing was written at --out"))
