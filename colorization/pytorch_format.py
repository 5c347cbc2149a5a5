"""Reading PyTorch checkpoints (torch.save's zip format and the legacy format of
PyTorch before 1.6) without torch, and without running any code from the file.

A zip checkpoint holds `PREFIX/data.pkl`, a pickle of the saved object (for a
state_dict, an OrderedDict of tensors), and `PREFIX/data/KEY`, the raw
little-endian bytes of each storage, which the pickle names through persistent
ids ('storage', storage type, KEY, location, numel). A legacy checkpoint is a
sequence of pickles (a magic number, the protocol version, the writer's system
information, the object, the list of storage keys) followed by each storage as
an int64 element count and its bytes. A pickle can name any Python callable;
this reader's unpickler resolves only the few names a state_dict needs
(OrderedDict, torch's tensor rebuilders and storage types) to functions of its own
that build NumPy arrays, and refuses every other name, so nothing in the file is
ever imported or called.
"""

import collections
import io
import pickle
import zipfile

import numpy as np


class PyTorchError(ValueError):
    """A file that is not a readable PyTorch checkpoint; str() is the one-line reason."""


_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
             "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
             "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
             "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGES[name])


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization's MAGIC_NUMBER
LEGACY_HEAD = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")  # its pickle


class _LazyStorage:
    """A legacy checkpoint's storage, whose bytes follow the pickle."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class _LazyTensor:
    def __init__(self, storage, args):
        self.storage, self.args = storage, args


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2, as a NumPy array of its own (checked bounds)."""
    if isinstance(storage, _LazyStorage):  # a legacy file: built once its bytes are read
        return _LazyTensor(storage, (offset, size, stride))
    size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise PyTorchError("a tensor with negative sizes or strides")
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    if 0 in size:
        return np.empty(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise PyTorchError("a tensor reaches past its storage (a damaged file)")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return np.array(view)


def _rebuild_parameter(data, *_):
    return data


_ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, archive=None, prefix=""):
        super().__init__(data if hasattr(data, "read") else io.BytesIO(data))
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise PyTorchError(f"the checkpoint names {module}.{name}, which a state_dict does "
                           "not hold (refused, not run)")

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType)):
            raise PyTorchError("an unexpected persistent id in the checkpoint")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if self.archive is None:  # legacy: the bytes come after the pickle
            return self.storages.setdefault(key, _LazyStorage(key, kind.dtype, numel))
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            if numel < 0:
                raise PyTorchError(f"the storage {key} claims {numel} elements")
            try:
                # At most what the elements need is inflated: a member may be a zip bomb.
                with self.archive.open(name) as member:
                    raw = member.read(numel * kind.dtype.itemsize)
            except KeyError:
                raise PyTorchError(f"the storage {key} is missing from the archive") from None
            if len(raw) < numel * kind.dtype.itemsize:
                raise PyTorchError(f"the storage {key} holds {len(raw)} bytes, fewer than its "
                                   f"{numel} elements need (truncated)")
            self.storages[key] = np.frombuffer(raw, kind.dtype, count=numel)
        return self.storages[key]


# A state_dict's pickle holds names and shapes, not tensors: about 10 kB for Zhang et
# al.'s network, under 1 MB for the largest torchvision models.
MAX_PICKLE_BYTES = 64 << 20

_READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, zipfile.BadZipFile, MemoryError, RecursionError)


def _read_legacy(path):
    """The object of a legacy (pre-1.6) checkpoint, its tensors built."""
    with open(path, "rb") as f:
        try:
            if _Unpickler(f).load() != LEGACY_MAGIC:
                raise PyTorchError("not a PyTorch checkpoint (no magic number)")
            _Unpickler(f).load()  # the protocol version
            info = _Unpickler(f).load()
            if not (isinstance(info, dict) and info.get("little_endian", True)):
                raise PyTorchError("a big-endian checkpoint (not supported)")
            unpickler = _Unpickler(f)
            state = unpickler.load()
            keys = _Unpickler(f).load()
            if not isinstance(keys, list):
                raise PyTorchError("the checkpoint's storage list is missing")
            data = {}
            for key in keys:
                storage = unpickler.storages.get(str(key))
                if storage is None:
                    raise PyTorchError(f"the storage {key} is not used by the object")
                count = int.from_bytes(f.read(8), "little", signed=True)
                # Only the bytes the tensors use are read: the count is the file's word,
                # and read(n) allocates n bytes before it reads.
                raw = f.read(max(0, min(count, storage.numel)) * storage.dtype.itemsize)
                if count < storage.numel or len(raw) < storage.numel * storage.dtype.itemsize:
                    raise PyTorchError(f"the storage {key} ends early (truncated)")
                data[storage.key] = np.frombuffer(raw, storage.dtype, count=storage.numel)
        except PyTorchError:
            raise
        except _READ_ERRORS as e:
            raise PyTorchError(f"not a readable PyTorch checkpoint ({type(e).__name__}: "
                               f"{str(e)[:80]})") from None

    def built(value):
        if isinstance(value, _LazyTensor):
            if value.storage.key not in data:
                raise PyTorchError(f"the storage {value.storage.key} holds no bytes")
            return _rebuild_tensor(data[value.storage.key], *value.args)
        if isinstance(value, dict):
            return type(value)((k, built(v)) for k, v in value.items())
        return value

    return built(state)


def read_state_dict(path):
    """{name: NumPy array} of a torch.save'd state_dict (zip or legacy format), or
    PyTorchError."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_HEAD))
    if head == LEGACY_HEAD:
        return _state_dict_of(_read_legacy(path))
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise PyTorchError(f"not a PyTorch zip checkpoint ({e})") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise PyTorchError("not a PyTorch checkpoint (a zip archive without one "
                               "PREFIX/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise PyTorchError("a big-endian checkpoint (not supported)")
        try:
            with archive.open(pickles[0]) as member:
                pickled = member.read(MAX_PICKLE_BYTES + 1)
            if len(pickled) > MAX_PICKLE_BYTES:
                raise PyTorchError(f"its {pickles[0]} is over {MAX_PICKLE_BYTES >> 20} MB "
                                   "(a state_dict's is a few hundred kB; a zip bomb?)")
            state = _Unpickler(pickled, archive, prefix).load()
        except PyTorchError:
            raise
        except _READ_ERRORS as e:
            raise PyTorchError(f"not a readable PyTorch checkpoint ({type(e).__name__}: "
                               f"{str(e)[:80]})") from None
    return _state_dict_of(state)


def _state_dict_of(state):
    if isinstance(state, dict) and "state_dict" in state and isinstance(
            state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint that holds one
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise PyTorchError("the checkpoint is not a state_dict (names to tensors)")
    return dict(state)
