"""Writing files so that a kill at any moment leaves the old file or the new one,
never a half-written one: write a hidden temporary beside it, then rename."""

import json
import os


def partial_path(path):
    """The hidden temporary name used while `path` is being written."""
    return os.path.join(os.path.dirname(path), f".partial-{os.path.basename(path)}")


def write_json_atomic(path, obj):
    tmp = partial_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_bytes_atomic(path, data):
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
