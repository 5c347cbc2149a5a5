"""Writing files so that a kill at any moment leaves the old file or the new one,
never a half-written one: write a hidden temporary beside it, then rename.

Every such write in the project goes through here. The temporary's name is
unique to the writer (`.partial-NAME.PID-TOKEN`), so two processes writing the
same file never write into one temporary; the last rename wins, whole.
"""

import contextlib
import glob
import json
import os
import secrets
import shutil

PREFIX = ".partial-"


def temporary_path(path, suffix=""):
    """A hidden temporary name beside `path`, unique to this call. `suffix` ends it
    (writers that pick the format from the name, e.g. ".png" or ".keras")."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(os.path.dirname(path), f"{PREFIX}{os.path.basename(path)}.{token}{suffix}")


def leftovers(path):
    """Temporaries of `path` left by killed writers (to clean up on a rerun)."""
    pattern = os.path.join(glob.escape(os.path.dirname(path)),
                           f"{PREFIX}{glob.escape(os.path.basename(path))}.*")
    return glob.glob(pattern)


@contextlib.contextmanager
def replacing(path, suffix="", fsync=False):
    """Yields a temporary path to write (a file, or a folder such as a SavedModel);
    renames it to `path` when the block ends normally, removes it when the block
    raises."""
    tmp = temporary_path(path, suffix)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise


def replace_atomic(path, write, suffix=""):
    """Calls write(temporary path), then renames the temporary to `path`."""
    with replacing(path, suffix) as tmp:
        write(tmp)


def write_bytes_atomic(path, data):
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(path, text):
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_json_atomic(path, obj):
    with replacing(path, fsync=True) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def write_png_atomic(path, rgb8):
    """An RGB uint8 image as PNG."""
    import cv2

    ok, buf = cv2.imencode(".png", rgb8[..., ::-1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, buf.tobytes())


def save_figure_atomic(fig, path, dpi=90):
    """A matplotlib figure as PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    try:
        replace_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
