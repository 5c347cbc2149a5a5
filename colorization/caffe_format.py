"""Reading (and, for tests, writing) Caffe's model files without Caffe.

A .caffemodel is a binary protocol buffer `NetParameter` and a .prototxt the same
message in protobuf's text format. The message classes are built at run time from
a small subset of Caffe's caffe.proto (only the fields the colorization releases
use; field numbers as in BVLC/caffe's src/caffe/proto/caffe.proto), with the
protobuf package TensorFlow already installs. Unknown fields of a binary file are
kept aside by protobuf; unknown fields of a text file are skipped.
"""

import numpy as np

_OPT, _REP = 1, 3  # FieldDescriptorProto labels
_FIELD_TYPES = {"double": 1, "float": 2, "int64": 3, "uint32": 13, "int32": 5, "bool": 8,
                "string": 9, "message": 11}

# message -> [(field, number, type, repeated, packed)]; type: a scalar or a message name
_SCHEMA = {
    "BlobShape": [("dim", 1, "int64", True, True)],
    "BlobProto": [("shape", 7, "BlobShape", False, False),
                  ("data", 5, "float", True, True),
                  ("double_data", 8, "double", True, True),
                  ("num", 1, "int64", False, False), ("channels", 2, "int64", False, False),
                  ("height", 3, "int64", False, False), ("width", 4, "int64", False, False)],
    "ParamSpec": [("name", 1, "string", False, False), ("lr_mult", 3, "float", False, False),
                  ("decay_mult", 4, "float", False, False)],
    "FillerParameter": [("type", 1, "string", False, False),
                        ("value", 2, "float", False, False)],
    "ConvolutionParameter": [("num_output", 1, "uint32", False, False),
                             ("bias_term", 2, "bool", False, False),
                             ("pad", 3, "uint32", True, False),
                             ("kernel_size", 4, "uint32", True, False),
                             ("group", 5, "uint32", False, False),
                             ("stride", 6, "uint32", True, False),
                             ("dilation", 18, "uint32", True, False)],
    "BatchNormParameter": [("use_global_stats", 1, "bool", False, False),
                           ("eps", 3, "float", False, False)],
    "ScaleParameter": [("filler", 3, "FillerParameter", False, False),
                       ("bias_term", 4, "bool", False, False)],
    "InputParameter": [("shape", 1, "BlobShape", True, False)],
    "LayerParameter": [("name", 1, "string", False, False),
                       ("type", 2, "string", False, False),
                       ("bottom", 3, "string", True, False),
                       ("top", 4, "string", True, False),
                       ("param", 6, "ParamSpec", True, False),
                       ("blobs", 7, "BlobProto", True, False),
                       ("convolution_param", 106, "ConvolutionParameter", False, False),
                       ("batch_norm_param", 139, "BatchNormParameter", False, False),
                       ("scale_param", 142, "ScaleParameter", False, False),
                       ("input_param", 143, "InputParameter", False, False)],
    "NetParameter": [("name", 1, "string", False, False),
                     ("layer", 100, "LayerParameter", True, False)],
}
_PACKAGE = "colorization_caffe_subset"


class CaffeError(ValueError):
    """A file that is not a usable Caffe model; str() is the one-line reason."""


def _classes():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE,
                                               syntax="proto2")
    for message, fields in _SCHEMA.items():
        m = proto.message_type.add(name=message)
        for name, number, kind, repeated, packed in fields:
            f = m.field.add(name=name, number=number, label=_REP if repeated else _OPT)
            if kind in _FIELD_TYPES:
                f.type = _FIELD_TYPES[kind]
            else:
                f.type = _FIELD_TYPES["message"]
                f.type_name = f".{_PACKAGE}.{kind}"
            if packed:
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(
        f"{_PACKAGE}.{name}")) for name in _SCHEMA}


_CLASSES = None


def message(name):
    """The message class `name` of the subset (NetParameter, LayerParameter, ...)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _classes()
    return _CLASSES[name]


def read_caffemodel(data):
    """bytes of a .caffemodel -> NetParameter; CaffeError when it is not one with layers."""
    from google.protobuf.message import DecodeError

    net = message("NetParameter")()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise CaffeError(f"not a Caffe model (the protocol buffer does not parse: "
                         f"{str(e).splitlines()[0] if str(e) else 'damaged or truncated'})"
                         ) from None
    if not any(layer.blobs for layer in net.layer):
        raise CaffeError("not a Caffe model with weights (no layer holds blobs; an old "
                         "V1 'layers' file or another protocol buffer)")
    return net


def read_prototxt(text):
    """Text of a .prototxt -> NetParameter (fields outside the subset skipped)."""
    from google.protobuf import text_format

    net = message("NetParameter")()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise CaffeError(f"not a Caffe prototxt ({str(e).splitlines()[0][:120]})") from None
    if not net.layer:
        raise CaffeError("not a Caffe prototxt (no layer { } entries)")
    return net


def blob_array(blob):
    """A BlobProto's values as a float32 array of its shape (new or legacy 4-D)."""
    values = np.asarray(blob.double_data or blob.data, np.float32)
    shape = (tuple(blob.shape.dim) if blob.HasField("shape")
             else tuple(d for d in (blob.num, blob.channels, blob.height, blob.width) if d))
    if int(np.prod(shape, dtype=np.int64)) != values.size:
        raise CaffeError(f"a blob of shape {shape} holds {values.size} values (a truncated "
                         "or damaged file)")
    return values.reshape(shape)


def set_blob(blob, array):
    """Writes a float32 array into a BlobProto (its shape and data)."""
    array = np.asarray(array, np.float32)
    blob.shape.dim.extend(array.shape)
    blob.data.extend(array.ravel())


def weights_by_layer(net):
    """{layer name: (type, [arrays])} of the layers that hold blobs."""
    return {layer.name: (layer.type, [blob_array(b) for b in layer.blobs])
            for layer in net.layer if layer.blobs}
