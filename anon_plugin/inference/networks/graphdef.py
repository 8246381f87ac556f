"""A minimal reader of TensorFlow frozen GraphDef files (protobuf wire format).

Only what a frozen inference graph needs is decoded: node names, ops, inputs
and attributes, with ``Const`` tensors turned into numpy arrays. No
TensorFlow or protobuf package is involved.

Field numbers (tensorflow/core/framework/*.proto):
GraphDef.node=1; NodeDef: name=1 op=2 input=3 device=4 attr=5 (map entry key=1 value=2);
AttrValue: list=1 s=2 i=3 f=4 b=5 type=6 shape=7 tensor=8;
TensorProto: dtype=1 tensor_shape=2 tensor_content=4 float_val=5 double_val=6
int_val=7 string_val=8 int64_val=10 bool_val=11; TensorShapeProto: dim=2 (Dim.size=1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# TF DataType enum -> numpy dtype (only the ones frozen graphs use).
DTYPES: dict[int, Any] = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16,
    6: np.int8, 7: np.object_, 9: np.int64, 10: np.bool_, 19: np.float16,
}
_Bytes = bytes | memoryview  # the file is read as a memoryview and sliced without copies


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


def _varint(buf: _Bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: _Bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value): int for varint, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | _Bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wire: int, value: Any) -> list[int]:
    """A repeated int field: packed (length-delimited) or one varint."""
    if wire != 2:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


def _shape(buf: _Bytes) -> list[int]:
    dims = []
    for n, _, dim in _fields(buf):
        if n == 2:
            dims.append(next((_signed(v) for k, _, v in _fields(dim) if k == 1), 0))
    return dims


def _tensor(buf: _Bytes) -> np.ndarray:
    dtype, shape, content = np.float32, [], None
    values: list[float | int | bytes] = []
    for n, wire, v in _fields(buf):
        if n == 1:
            dtype = DTYPES[v]
        elif n == 2:
            shape = _shape(v)
        elif n == 4:
            content = v
        elif n in (5, 6):  # float_val / double_val: packed fixed-width or one value
            fmt = "f" if n == 5 else "d"
            values += struct.unpack(f"<{len(v) // struct.calcsize(fmt)}{fmt}", v)
        elif n in (7, 10, 11):
            values += _ints(wire, v)
        elif n == 8:
            values.append(bytes(v))
    count = int(np.prod(shape, dtype=np.int64))
    if content is not None:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    if len(values) < count:  # TF stores a splat as one value, repeated to fill the shape
        values += [values[-1] if values else 0] * (count - len(values))
    return np.array(values, dtype=dtype).reshape(shape)


def _attr(buf: _Bytes) -> Any:
    for n, _, v in _fields(buf):
        if n == 1:  # ListValue: s=2 i=3 f=4 b=5 type=6 shape=7 tensor=8
            out: list[Any] = []
            for k, w, item in _fields(v):
                if k == 2:
                    out.append(bytes(item).decode())
                elif k in (3, 5, 6):
                    out += _ints(w, item)
                elif k == 4:
                    out += struct.unpack(f"<{len(item) // 4}f", item) if w == 2 else [struct.unpack("<f", item)[0]]
                elif k == 7:
                    out.append(_shape(item))
                elif k == 8:
                    out.append(_tensor(item))
            return out
        if n == 2:
            return bytes(v).decode(errors="replace")
        if n in (3, 6):
            return _signed(v)
        if n == 4:
            return struct.unpack("<f", v)[0]
        if n == 5:
            return bool(v)
        if n == 7:
            return _shape(v)
        if n == 8:
            return _tensor(v)
    return None  # an empty AttrValue (e.g. an empty list)


def _node(buf: _Bytes) -> Node:
    node = Node("", "", [])
    for n, _, v in _fields(buf):
        if n == 1:
            node.name = bytes(v).decode()
        elif n == 2:
            node.op = bytes(v).decode()
        elif n == 3:
            node.inputs.append(bytes(v).decode())
        elif n == 5:
            entry = dict((k, val) for k, _, val in _fields(v))
            node.attrs[bytes(entry.get(1, b"")).decode()] = _attr(entry.get(2, b""))
    return node


def read_graphdef(path: Path) -> list[Node]:
    """The nodes of a GraphDef file, in file order; Const values under ``attrs["value"]``."""
    buf = memoryview(Path(path).read_bytes())
    return [_node(v) for n, _, v in _fields(buf) if n == 1]
