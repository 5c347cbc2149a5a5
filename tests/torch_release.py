"""Iizuka et al.'s Torch 7 release (colornet.t7) rebuilt for the tests: a writer of
Torch 7's binary serialization, the release's network as an nngraph gModule of nn
modules with weights of our choosing, and a NumPy forward pass of that graph
written from Torch's layer definitions (NCHW), the reference the converter is
checked against.

What is known of the released file, and followed here: a table {model = gModule,
mean = number}; the gModule takes {global 224 x 224, local} luma minus the mean;
forwardnodes[9] holds an nn.Sequential whose modules[3] and [4] are the two
nn.Replicate that broadcast the 256-d global vector to H/8 and W/8 (colorize.lua
sets their nfeatures); the output is a sigmoid at half the local input's size,
read as ab = (2 o - 1) * 100. The layer sizes are the paper's Table 1. What is not
known (which layers carry batch norm, how the graph is cut into nodes) is chosen
here and varied where the converter must not depend on it.

Written independently of colorization/ (the converter's reading and mapping):
only the facts above are shared.
"""

import struct

import numpy as np

# ----------------------------------------------------------------------------
# Torch 7 binary serialization (torch7/File.lua writeObject, 64-bit longs)

NIL, NUMBER, STRING, TABLE, TORCH, BOOLEAN = 0, 1, 2, 3, 4, 5


class Obj:
    """A Torch object: class name and fields (a dict written as a table)."""

    def __init__(self, cls, **fields):
        self.cls, self.fields = cls, fields


class Storage:
    def __init__(self, array):
        self.array = np.ascontiguousarray(array, np.float32).ravel()


class Tensor:
    """A FloatTensor viewing a Storage (shared storages are written once)."""

    def __init__(self, array=None, storage=None, shape=None):
        if storage is None:
            array = np.asarray(array, np.float32)
            storage, shape = Storage(array), array.shape
        self.storage, self.shape = storage, tuple(shape)


class LongStorage:
    def __init__(self, values):
        self.values = [int(v) for v in values]


class Table(dict):
    """A Lua table whose keys may be tables (compared by identity)."""

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


class Writer:
    def __init__(self):
        self.out = bytearray()
        self.index = {}

    def int(self, v):
        self.out += struct.pack("<i", v)

    def long(self, v):
        self.out += struct.pack("<q", v)

    def string(self, s):
        b = s.encode() if isinstance(s, str) else s
        self.int(len(b))
        self.out += b

    def _ref(self, obj, kind):
        """Writes the type and reference index; True if the object was written before."""
        self.int(kind)
        seen = id(obj) in self.index
        if not seen:
            self.index[id(obj)] = (len(self.index) + 1, obj)  # obj kept alive
        self.int(self.index[id(obj)][0])
        return seen

    def obj(self, v):
        if v is None:
            self.int(NIL)
        elif isinstance(v, bool):
            self.int(BOOLEAN)
            self.int(1 if v else 0)
        elif isinstance(v, (int, float)):
            self.int(NUMBER)
            self.out += struct.pack("<d", float(v))
        elif isinstance(v, str):
            self.int(STRING)
            self.string(v)
        elif isinstance(v, (dict, list)):
            if self._ref(v, TABLE):
                return
            items = list(enumerate(v, 1)) if isinstance(v, list) else list(v.items())
            self.int(len(items))
            for k, value in items:
                self.obj(k)
                self.obj(value)
        elif isinstance(v, (Obj, Tensor, Storage, LongStorage)):
            if self._ref(v, TORCH):
                return
            self.string("V 1")
            if isinstance(v, Tensor):
                self.string("torch.FloatTensor")
                self.int(len(v.shape))
                strides = [int(np.prod(v.shape[i + 1:])) for i in range(len(v.shape))]
                for n in v.shape:
                    self.long(n)
                for s in strides:
                    self.long(s)
                self.long(1)  # storage offset, 1-based
                self.obj(v.storage)
            elif isinstance(v, Storage):
                self.string("torch.FloatStorage")
                self.long(v.array.size)
                self.out += v.array.astype("<f4").tobytes()
            elif isinstance(v, LongStorage):
                self.string("torch.LongStorage")
                self.long(len(v.values))
                self.out += struct.pack(f"<{len(v.values)}q", *v.values)
            else:
                self.string(v.cls)
                self.obj(v.fields)
        else:
            raise TypeError(type(v))


def serialize(value):
    w = Writer()
    w.obj(value)
    return bytes(w.out)


# ----------------------------------------------------------------------------
# The release's network, Table 1 of the paper, at a width (1: the release)

LOW = [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1)]
GLOBAL_CONV = [(512, 2), (512, 1), (512, 2), (512, 1)]
GLOBAL_FC = [1024, 512, 256]
MID = [512, 256]
COLOUR = [128, "up", 64, 64, "up", 32]


def conv(rng, n_in, n_out, k=3, stride=1):
    fan = n_in * k * k
    return Obj("nn.SpatialConvolution", weight=Tensor(rng.normal(0, (2 / fan) ** 0.5,
                                                                 (n_out, n_in, k, k))),
               bias=Tensor(rng.normal(0, 0.05, n_out)), nInputPlane=n_in, nOutputPlane=n_out,
               kW=k, kH=k, dW=stride, dH=stride, padW=k // 2, padH=k // 2, train=False)


def batch_norm(rng, n, spatial=True, old_layout=False):
    fields = {"weight": Tensor(rng.uniform(0.6, 1.4, n)), "bias": Tensor(rng.normal(0, 0.1, n)),
              "running_mean": Tensor(rng.normal(0, 0.2, n)), "eps": 1e-5, "momentum": 0.1,
              "affine": True, "train": False}
    var = rng.uniform(0.3, 2.0, n)
    if old_layout:  # nn before 2016: running_std holds 1 / sqrt(var + eps)
        fields["running_std"] = Tensor(1.0 / np.sqrt(var + 1e-5))
    else:
        fields["running_var"] = Tensor(var)
    return Obj("nn.SpatialBatchNormalization" if spatial else "nn.BatchNormalization", **fields)


def linear(rng, n_in, n_out):
    return Obj("nn.Linear", weight=Tensor(rng.normal(0, (2 / n_in) ** 0.5, (n_out, n_in))),
               bias=Tensor(rng.normal(0, 0.05, n_out)))


def seq(*modules):
    return Obj("nn.Sequential", modules=list(modules), train=False)


def relu():
    return Obj("nn.ReLU", inplace=True, threshold=0, val=0)


def ch(n, width):
    return max(1, round(n * width))


def shared_clone(module):
    """A module that shares every tensor's storage with `module` (Torch's
    clone('weight', 'bias', 'running_mean', ...) as nngraph models share layers)."""
    if module.cls == "nn.Sequential":
        return seq(*[shared_clone(m) for m in module.fields["modules"]])
    fields = {k: (Tensor(storage=v.storage, shape=v.shape) if isinstance(v, Tensor) else v)
              for k, v in module.fields.items()}
    return Obj(module.cls, **fields)


class Node:
    def __init__(self, module, parents=()):
        self.module, self.parents = module, list(parents)


def release(width=1.0, seed=0, num_classes=0, old_bn=False, fc_bn=False, global_first=False,
            mean=0.4656):
    """(the file's top table, the graph's nodes in forward order, outputs) of a
    release at `width`. fc_bn: batch norm after the fully connected layers too;
    old_bn: the pre-2016 running_std layout; global_first: the join takes the
    global features first; num_classes: a scene head (0: none, as colorize.lua
    reads the released model)."""
    rng = np.random.default_rng(seed)
    c = lambda n: ch(n, width)

    def conv_unit(n_in, n_out, stride=1):
        return [conv(rng, n_in, n_out, 3, stride), batch_norm(rng, n_out, old_layout=old_bn),
                relu()]

    def fc_unit(n_in, n_out):
        m = [linear(rng, n_in, n_out)]
        if fc_bn:
            m.append(batch_norm(rng, n_out, spatial=False, old_layout=old_bn))
        return m + [relu()]

    low, n_in = [], 1
    for filters, stride in LOW:
        low += conv_unit(n_in, c(filters), stride)
        n_in = c(filters)
    low_global = seq(*low)
    low_local = shared_clone(low_global)
    gconv = []
    for filters, stride in GLOBAL_CONV:
        gconv += conv_unit(n_in, c(filters), stride)
        n_in = c(filters)
    flat = n_in * 7 * 7
    fc1 = seq(Obj("nn.View", size=LongStorage([flat]), numElements=flat, numInputDims=3),
              *fc_unit(flat, c(GLOBAL_FC[0])))
    fc2 = seq(*fc_unit(c(GLOBAL_FC[0]), c(GLOBAL_FC[1])))
    broadcast = seq(*fc_unit(c(GLOBAL_FC[1]), c(GLOBAL_FC[2])),
                    Obj("nn.Replicate", nfeatures=28, dim=3),
                    Obj("nn.Replicate", nfeatures=28, dim=4))
    if fc_bn:  # Replicate must stay modules[3] and [4] (colorize.lua): the linear layer
        pre = seq(broadcast.fields["modules"].pop(0))  # moves to a node of its own
    mid, m_in = [], c(512)
    for filters in MID:
        mid += conv_unit(m_in, c(filters))
        m_in = c(filters)
    colour, n_in = [conv(rng, c(256) * 2, c(256), 1), batch_norm(rng, c(256)), relu()], c(256)
    for item in COLOUR:
        if item == "up":
            colour.append(Obj("nn.SpatialUpSamplingNearest", scale_factor=2))
        else:
            colour += conv_unit(n_in, c(item))
            n_in = c(item)
    colour += [conv(rng, n_in, 2, 3), Obj("nn.Sigmoid")]

    n_global = Node(Obj("nn.Identity"))
    n_local = Node(Obj("nn.Identity"))
    n_low_g = Node(low_global, [n_global])
    n_low_l = Node(low_local, [n_local])
    n_gconv = Node(seq(*gconv), [n_low_g])
    n_fc1 = Node(fc1, [n_gconv])
    n_fc2 = Node(fc2, [n_fc1])
    n_mid = Node(seq(*mid), [n_low_l])
    if fc_bn:
        n_pre = Node(pre, [n_fc2])
        nodes_before = [n_global, n_local, n_low_g, n_low_l, n_gconv, n_fc1, n_fc2, n_pre]
        n_bcast = Node(broadcast, [n_pre])
    else:
        nodes_before = [n_global, n_local, n_low_g, n_low_l, n_gconv, n_fc1, n_fc2, n_mid]
        n_bcast = Node(broadcast, [n_fc2])
    n_join = Node(Obj("nn.JoinTable", dimension=2, nInputDims=3),
                  [n_bcast, n_mid] if global_first else [n_mid, n_bcast])
    n_colour = Node(seq(*colour), [n_join])
    order = nodes_before + [n_bcast] + ([n_mid] if fc_bn else []) + [n_join, n_colour]
    outputs = [n_colour]
    if num_classes:
        head = [linear(rng, c(512), c(256))]
        if fc_bn:
            head.append(batch_norm(rng, c(256), spatial=False, old_layout=old_bn))
        head += [relu(), linear(rng, c(256), num_classes), Obj("nn.SoftMax")]
        n_class = Node(seq(*head), [n_fc2])
        order.append(n_class)
        outputs.append(n_class)
    assert order[8] is n_bcast  # forwardnodes[9] in Lua's 1-based count
    return {"model": gmodule(order, [n_global, n_local], outputs), "mean": mean}, order, outputs


def gmodule(order, inputs, outputs):
    """An nngraph gModule of the nodes: nngraph.Node objects whose data holds the
    module and mapindex (the parents' data in input order), children the consumers;
    the innode feeds the inputs, the outputs feed the outnode."""
    data = {id(n): Table(module=n.module, forwardNodeId=i + 1) for i, n in enumerate(order)}
    torch_nodes = {id(n): Obj("nngraph.Node", data=data[id(n)], children=[], id=i + 1,
                              visited=False, marked=False) for i, n in enumerate(order)}
    for n in order:
        mapindex = Table()
        for k, p in enumerate(n.parents, 1):
            mapindex[k] = data[id(p)]
            mapindex[data[id(p)]] = k
            torch_nodes[id(p)].fields["children"].append(torch_nodes[id(n)])
        data[id(n)]["mapindex"] = mapindex
    forward = [torch_nodes[id(n)] for n in order]
    return Obj("nn.gModule", forwardnodes=forward, modules=[n.module for n in order],
               nInputs=len(inputs), innode=Obj("nngraph.Node", data=Table(), children=[
                   torch_nodes[id(n)] for n in inputs], id=0),
               outnode=Obj("nngraph.Node", data=Table(mapindex=Table(
                   {k: data[id(n)] for k, n in enumerate(outputs, 1)})), children=[],
                   id=len(order) + 1),
               train=False)


# ----------------------------------------------------------------------------
# Torch's layer definitions in NumPy (NCHW, batch 1)

def _conv(x, m):
    f = m.fields
    w = f["weight"].storage.array.reshape(f["weight"].shape)
    b = f["bias"].storage.array
    s, p, k = f["dW"], f["padW"], f["kW"]
    x = np.pad(x, ((0, 0), (p, p), (p, p)))
    c, h, wd = x.shape
    oh, ow = (h - k) // s + 1, (wd - k) // s + 1
    cols = np.empty((c, k, k, oh, ow), np.float32)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = x[:, i:i + s * oh:s, j:j + s * ow:s]
    return np.einsum("oikl,iklhw->ohw", w, cols, optimize=True) + b[:, None, None]


def _bn(x, m):
    f = m.fields
    get = lambda k: f[k].storage.array.reshape(f[k].shape)
    var = get("running_var") if "running_var" in f else 1.0 / get("running_std") ** 2 - f["eps"]
    shape = (-1, 1, 1) if x.ndim == 3 else (-1,)
    scale = (get("weight") / np.sqrt(var + f["eps"])).reshape(shape)
    return (x - get("running_mean").reshape(shape)) * scale + get("bias").reshape(shape)


def module_forward(m, x):
    f, cls = m.fields, m.cls
    if cls == "nn.Sequential":
        for sub in f["modules"]:
            x = module_forward(sub, x)
        return x
    if cls == "nn.SpatialConvolution":
        return _conv(x, m)
    if cls in ("nn.SpatialBatchNormalization", "nn.BatchNormalization"):
        return _bn(x, m)
    if cls == "nn.ReLU":
        return np.maximum(x, 0)
    if cls == "nn.Sigmoid":
        return 1 / (1 + np.exp(-x))
    if cls == "nn.SoftMax":
        e = np.exp(x - x.max())
        return e / e.sum()
    if cls == "nn.View":
        return x.reshape(-1)  # (C, H, W) order, Torch's
    if cls == "nn.Linear":
        w = f["weight"].storage.array.reshape(f["weight"].shape)
        return w @ x + f["bias"].storage.array
    if cls == "nn.Replicate":  # batch 1: dim 3 of (B, C, H) is axis 1 of (C, H)
        return np.repeat(np.expand_dims(x, f["dim"] - 2), f["nfeatures"], f["dim"] - 2)
    if cls == "nn.SpatialUpSamplingNearest":
        return x.repeat(f["scale_factor"], 1).repeat(f["scale_factor"], 2)
    if cls == "nn.Identity":
        return x
    raise NotImplementedError(cls)


def forward(order, outputs, global_luma, local_luma):
    """The graph on one image: inputs (224, 224) and (H, W) luma minus the mean ->
    the outputs' arrays (sigmoid (2, H/2, W/2), class probabilities)."""
    h, w = local_luma.shape
    bcast = order[8].module.fields["modules"]
    bcast[2].fields["nfeatures"], bcast[3].fields["nfeatures"] = h // 8, w // 8
    values = {}
    for i, n in enumerate(order):
        if i < 2:
            x = (global_luma if i == 0 else local_luma)[None].astype(np.float32)
        elif n.module.cls == "nn.JoinTable":  # dimension 2 of (B, C, H, W): channels
            values[id(n)] = np.concatenate([values[id(p)] for p in n.parents], 0)
            continue
        else:
            x = values[id(n.parents[0])]
        values[id(n)] = module_forward(n.module, x)
    return [values[id(n)] for n in outputs]
