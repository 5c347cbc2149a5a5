"""Decompression bombs of a few hundred bytes: real headers of huge images (valid
files shrunk, then their size fields raised), for the pixel-limit tests."""

import io
import struct

import cv2
import numpy as np
from PIL import Image


def tiff_bomb(w=30000, h=30000):
    b = io.BytesIO(); Image.new("L", (16, 16)).save(b, "TIFF"); data = bytearray(b.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8]); (n,) = struct.unpack("<H", data[ifd:ifd + 2])
    for k in range(n):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack("<HH", data[at:at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            value = w if tag == 256 else h
            packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
            data[at + 8:at + 12] = packed
    return bytes(data)

def gif_bomb(w=20000, h=20000):
    b = io.BytesIO(); Image.new("P", (16, 16)).save(b, "GIF"); data = bytearray(b.getvalue())
    data[6:10] = struct.pack("<HH", w, h)  # logical screen
    i = data.index(b"\x2c")  # image descriptor
    data[i + 5:i + 9] = struct.pack("<HH", w, h)
    return bytes(data)

def jpeg_fill_bomb(w=30000, h=30000):
    data = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data[:2] + b"\xff\xff\xff" + data[2:])  # legal fill bytes after SOI
