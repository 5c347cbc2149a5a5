"""Reading Torch 7 files (torch.save's binary serialization) without Torch, and the
graph of an nngraph gModule, for convert_model.py.

The file is parsed by the pure-Python `torchfile` package. Reading never runs code
from the file (a serialized Lua function stays bytes), and every tensor is checked
against its storage before it is viewed: torchfile's own readers trust the sizes
in the file, so a truncated or hostile file could otherwise make a view reach past
the bytes that were read.
"""

import os

import numpy as np


class Torch7Error(ValueError):
    """A file that is not a readable Torch 7 model; str() is the one-line reason."""


_FLOAT_TYPES = {b"torch.FloatTensor": np.float32, b"torch.DoubleTensor": np.float64,
                b"torch.CudaTensor": np.float32, b"torch.CudaDoubleTensor": np.float64}
_STORAGE_TYPES = {b"torch.FloatStorage": np.float32, b"torch.DoubleStorage": np.float64,
                  b"torch.CudaStorage": np.float32, b"torch.CudaDoubleStorage": np.float64,
                  b"torch.LongStorage": np.int64, b"torch.IntStorage": np.int32,
                  b"torch.ByteStorage": np.uint8, b"torch.CharStorage": np.int8,
                  b"torch.ShortStorage": np.int16}
_MAX_DIMS = 8


def _bytes_left(f):
    return os.fstat(f.fileno()).st_size - f.tell()


def _storage_reader(dtype):
    def read(reader, version):
        del version
        size = reader.read_long()
        if size < 0:
            raise Torch7Error(f"a storage of {size} elements")
        # Checked against the bytes left before reading: read(n) allocates n bytes
        # first, so a header claiming 2^40 elements would ask for 4 TB.
        if size * np.dtype(dtype).itemsize > _bytes_left(reader.f):
            raise Torch7Error(f"a storage of {size:,} elements, more than the file holds "
                              "(truncated or corrupt)")
        data = reader.f.read(size * np.dtype(dtype).itemsize)
        if len(data) != size * np.dtype(dtype).itemsize:
            raise Torch7Error("the file ends inside a storage (truncated)")
        return np.frombuffer(data, dtype).copy()
    return read


def _tensor_reader(dtype):
    def read(reader, version):
        del version
        ndim = reader.read_int()
        if not 0 <= ndim <= _MAX_DIMS:
            raise Torch7Error(f"a tensor of {ndim} dimensions")
        size = [reader.read_long() for _ in range(ndim)]
        stride = [reader.read_long() for _ in range(ndim)]
        offset = reader.read_long() - 1
        storage = reader.read_obj()
        if ndim == 0 or storage is None:
            return np.empty(0, dtype)
        if not isinstance(storage, np.ndarray) or min(size) < 0 or min(stride) < 0:
            raise Torch7Error("a tensor whose storage or sizes are not valid")
        if 0 in size:
            return np.empty(size, dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if offset < 0 or last >= storage.size:
            raise Torch7Error("a tensor reaches past its storage (a damaged file)")
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride])
        return np.array(view, dtype)  # its own memory, in C order
    return read


def read(path):
    """The file's top object (dicts with str keys, lists, numbers, NumPy arrays,
    torchfile.TorchObject for classes), or Torch7Error."""
    try:
        import torchfile
    except ImportError:
        raise Torch7Error("reading Torch 7 files needs the torchfile package "
                          "(pip install torchfile)") from None
    handlers = dict(torchfile.type_handlers)
    for name, dtype in _STORAGE_TYPES.items():
        torchfile.type_handlers[name] = _storage_reader(dtype)
    for name, dtype in _FLOAT_TYPES.items():
        torchfile.type_handlers[name] = _tensor_reader(dtype)
    try:
        with open(path, "rb") as f:
            return torchfile.T7Reader(f, utf8_decode_strings=True).read_obj()
    except Torch7Error as e:
        raise Torch7Error(f"not a readable Torch 7 file: {e}") from None
    except (EOFError, ValueError, TypeError, KeyError, OverflowError, MemoryError,
            RecursionError, UnicodeDecodeError, NotImplementedError, IndexError) as e:
        raise Torch7Error(f"not a readable Torch 7 file ({type(e).__name__}: "
                          f"{str(e)[:80] or 'truncated'})") from None
    except Exception as e:  # noqa: BLE001 (struct.error, torchfile's own exception)
        raise Torch7Error(f"not a readable Torch 7 file ({type(e).__name__}: "
                          f"{str(e)[:80] or 'truncated'})") from None
    finally:
        torchfile.type_handlers.clear()
        torchfile.type_handlers.update(handlers)


def class_name(obj):
    """'nn.SpatialConvolution' for a torch object, else None."""
    name = getattr(type(obj), "torch_typename", None)
    if name is None:
        return None
    name = obj.torch_typename()
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def fields(obj):
    """A torch object's fields (a dict), {} for anything else."""
    inner = getattr(obj, "_obj", None) if class_name(obj) else None
    return inner if isinstance(inner, dict) else {}


def leaves(module):
    """The modules a container (nn.Sequential) runs, in order, flattened."""
    if class_name(module) == "nn.Sequential":
        out = []
        for m in fields(module).get("modules") or []:
            out += leaves(m)
        return out
    return [] if module is None else [module]


class Graph:
    """An nngraph gModule's forward graph: nodes in forward order, each node's
    module (or None), its parents in input order and its children."""

    def __init__(self, gmodule):
        if class_name(gmodule) != "nn.gModule":
            raise Torch7Error(f"the model is a {class_name(gmodule) or type(gmodule).__name__}, "
                              "not an nngraph gModule")
        nodes = fields(gmodule).get("forwardnodes")
        if not isinstance(nodes, list) or not nodes:
            raise Torch7Error("the gModule has no forwardnodes")
        self.nodes = nodes
        datas = [fields(n).get("data") for n in nodes]
        self.module = [d.get("module") if isinstance(d, dict) else None for d in datas]
        by_data = {id(d): i for i, d in enumerate(datas)}
        by_node = {id(n): i for i, n in enumerate(nodes)}
        self.children = [[by_node[id(c)] for c in (fields(n).get("children") or [])
                          if id(c) in by_node] for n in nodes]
        self.parents = [[] for _ in nodes]
        for i, data in enumerate(datas):
            mapindex = data.get("mapindex") if isinstance(data, dict) else None
            ordered = []
            if isinstance(mapindex, dict):
                k = 1
                while k in mapindex and id(mapindex[k]) in by_data:
                    ordered.append(by_data[id(mapindex[k])])
                    k += 1
            if not ordered:  # no input order recorded: the order of the forward list
                ordered = [j for j in range(len(nodes)) if i in self.children[j]]
            self.parents[i] = ordered
