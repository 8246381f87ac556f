"""An OpenVINO IR v10 network (``.xml`` graph + ``.bin`` weights) run as a plain torch module.

No OpenVINO is needed: the XML lists layers and edges, the bin holds the
constants. ``read_constants`` turns the bin into named tensors (cached as
safetensors by the caller); ``IRGraph`` runs the layers in topological order
with torch ops. Only the opset-1 operations that MobileStyleGAN's export uses
are implemented; any other is refused when the graph is read, not when it runs.

Float constants are buffers (they follow ``.to(device)``); integer constants
and every shape computation stay on the CPU as small int64 tensors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ModelError

_DTYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32}


@dataclass(frozen=True)
class Layer:
    id: str
    type: str
    data: dict[str, str]
    inputs: tuple[tuple[str, str], ...]  # (layer id, output port) per input port, in port order
    outputs: tuple[str, ...]  # output port ids, in order
    shapes: tuple[tuple[int, ...], ...] = ()  # the static shape of each output, as the XML states it


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")] if text.strip() else []


def _required(value: str | None, what: str, xml_path: Path) -> str:
    """An attribute or text the IR must hold; a ModelError when it is missing."""
    if value is None:
        raise ModelError(f"{xml_path}: {what} is missing")
    return value


def parse(xml_path: Path) -> tuple[list[Layer], str, str]:
    """The layers in topological order, the input layer's id and the output (Result) layer's id."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ModelError(f"cannot read the OpenVINO graph {xml_path}: {exc}") from None
    if root.get("version") != "10":
        raise ModelError(f"{xml_path}: IR version {root.get('version')}, only 10 is read")

    def attr(element: ET.Element, name: str) -> str:
        return _required(element.get(name), f"<{element.tag}> {name}", xml_path)

    def children(element: ET.Element, tag: str) -> list[ET.Element]:
        found = element.find(tag)
        return list(found) if found is not None else []

    edges: dict[tuple[str, str], tuple[str, str]] = {}
    for edge in root.iter("edge"):
        edges[(attr(edge, "to-layer"), attr(edge, "to-port"))] = (attr(edge, "from-layer"), attr(edge, "from-port"))
    nodes = root.find("layers")
    if nodes is None:
        raise ModelError(f"{xml_path}: no <layers>")
    layers: dict[str, Layer] = {}
    for node in nodes:
        data = node.find("data")
        ports_in, ports_out = children(node, "input"), children(node, "output")
        node_id = attr(node, "id")
        inputs = tuple(edges[(node_id, attr(p, "id"))] for p in ports_in)
        outputs = tuple(attr(p, "id") for p in ports_out)
        shapes = tuple(tuple(int(_required(d.text, "<dim> text", xml_path)) for d in p.findall("dim"))
                       for p in ports_out)
        layers[node_id] = Layer(node_id, attr(node, "type"), dict(data.attrib) if data is not None else {},
                                inputs, outputs, shapes)
    unknown = {layer.type for layer in layers.values()} - set(_OPS) - {"Const", "Parameter", "Result"}
    if unknown:
        raise ModelError(f"{xml_path}: unsupported operations {', '.join(sorted(unknown))}")
    order: list[Layer] = []
    seen: set[str] = set()

    def visit(layer_id: str) -> None:  # iterative depth-first post-order
        stack = [(layer_id, False)]
        while stack:
            current, expanded = stack.pop()
            if current in seen:
                continue
            if expanded:
                seen.add(current)
                order.append(layers[current])
                continue
            stack.append((current, True))
            stack.extend((source, False) for source, _ in reversed(layers[current].inputs) if source not in seen)

    results = [layer.id for layer in layers.values() if layer.type == "Result"]
    params = [layer.id for layer in layers.values() if layer.type == "Parameter"]
    if len(results) != 1 or len(params) != 1:
        raise ModelError(f"{xml_path}: expected one input and one output, found {len(params)} and {len(results)}")
    visit(results[0])
    return order, params[0], results[0]


def read_constants(xml_path: Path, bin_path: Path) -> dict[str, Tensor]:
    """Every Const layer of the graph as a tensor named ``c<layer id>``."""
    layers, _, _ = parse(xml_path)
    blob = np.fromfile(bin_path, np.uint8)
    tensors = {}
    for layer in layers:
        if layer.type != "Const":
            continue
        offset, size = int(layer.data["offset"]), int(layer.data["size"])
        if offset + size > len(blob):
            raise ModelError(f"{bin_path}: constant {layer.id} lies past the end of the file")
        dtype = _DTYPES[layer.data["element_type"]]
        array = blob[offset:offset + size].view(dtype).reshape(_ints(layer.data.get("shape", "")))
        tensors[f"c{layer.id}"] = torch.from_numpy(array.astype(np.int64 if array.dtype.kind == "i" else np.float32))
    return tensors


def _shape(t: Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _reshape(x: Tensor, pattern: Tensor, data: dict) -> Tensor:
    dims = _shape(pattern)
    if data.get("special_zero") == "true":
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _axes(t: Tensor, rank: int) -> list[int]:
    return [a % rank for a in _shape(t)]


def _prelu(x: Tensor, slope: Tensor) -> Tensor:
    if slope.numel() == 1 or (x.dim() >= 2 and slope.numel() == x.shape[1]):
        return F.prelu(x, slope.reshape(-1))  # one fused kernel, three times faster than the where below
    return torch.where(x >= 0, x, x * slope)


def _gather(x: Tensor, indices: Tensor, axis: Tensor) -> Tensor:
    dim = int(axis) % x.dim()
    index = indices.to(torch.long)
    index = torch.where(index < 0, index + x.shape[dim], index)
    picked = torch.index_select(x, dim, index.reshape(-1).to(x.device))
    return picked.reshape((*x.shape[:dim], *index.shape, *x.shape[dim + 1:]))


def _conv(x: Tensor, w: Tensor, data: dict, groups: int = 1) -> Tensor:
    begin, end = _ints(data["pads_begin"]), _ints(data["pads_end"])
    if data.get("auto_pad", "explicit") not in ("explicit", "notset"):
        raise ModelError(f"auto_pad {data['auto_pad']} is not supported")
    x = F.pad(x, (begin[1], end[1], begin[0], end[0]))
    return F.conv2d(x, w, stride=_ints(data["strides"]), dilation=_ints(data["dilations"]), groups=groups)


def _group_conv(x: Tensor, w: Tensor, data: dict) -> Tensor:
    groups = w.shape[0]
    return _conv(x, w.reshape(-1, *w.shape[2:]), data, groups)


def _group_deconv(x: Tensor, w: Tensor, *rest: Tensor, data: dict) -> Tensor:
    if rest:
        raise ModelError("GroupConvolutionBackpropData with an output shape is not supported")
    groups = w.shape[0]  # (G, Cin/G, Cout/G, kh, kw) -> (Cin, Cout/G, kh, kw)
    y = F.conv_transpose2d(x, w.reshape(-1, *w.shape[2:]), stride=_ints(data["strides"]),
                           dilation=_ints(data["dilations"]), groups=groups,
                           output_padding=_ints(data.get("output_padding", "0, 0")))
    begin, end = _ints(data["pads_begin"]), _ints(data["pads_end"])
    return y[..., begin[0]:y.shape[-2] - end[0], begin[1]:y.shape[-1] - end[1]]


def _broadcast(x: Tensor, target: Tensor, *rest: Tensor, data: dict) -> Tensor:
    mode = data.get("mode", "numpy")
    if mode not in ("numpy", "bidirectional"):
        raise ModelError(f"Broadcast mode {mode} is not supported")
    shape = _shape(target)
    if mode == "bidirectional":
        shape = list(torch.broadcast_shapes(tuple(x.shape), tuple(shape)))
    return x.expand(shape) if x.dim() <= len(shape) else x


def _split(x: Tensor, axis: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
    dim = int(axis) % x.dim()
    sizes = _shape(lengths)
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[dim] - (sum(sizes) + 1)
    return torch.split(x, sizes, dim)


def _matmul(a: Tensor, b: Tensor, data: dict) -> Tensor:
    if data.get("transpose_a") == "true":
        a = a.transpose(-1, -2)
    if data.get("transpose_b") == "true":
        b = b.transpose(-1, -2)
    return a @ b


def _reduce_mean(x: Tensor, axes: Tensor, data: dict) -> Tensor:
    return x.mean(_axes(axes, x.dim()), keepdim=data.get("keep_dims") == "true")


def _unsqueeze(x: Tensor, axes: Tensor) -> Tensor:
    rank = x.dim() + axes.numel()
    for a in sorted(_axes(axes, rank)):
        x = x.unsqueeze(a)
    return x


def _squeeze(x: Tensor, axes: Tensor | None = None) -> Tensor:
    if axes is None:
        return x.squeeze()
    for a in sorted(_axes(axes, x.dim()), reverse=True):
        x = x.squeeze(a)
    return x


def _concat(*xs: Tensor, data: dict) -> Tensor:
    if all(x.device.type == "cpu" for x in xs) or all(x.device.type != "cpu" for x in xs):
        return torch.cat(xs, int(data["axis"]))
    device = next(x.device for x in xs if x.device.type != "cpu")
    return torch.cat([x.to(device) for x in xs], int(data["axis"]))


# type -> function(inputs..., data=attributes) returning a tensor or a tuple of tensors.
_OPS: dict[str, Callable[..., Tensor | tuple[Tensor, ...]]] = {
    "Add": lambda a, b, data: a + b,
    "Multiply": lambda a, b, data: a * b,
    "Power": lambda a, b, data: a ** b,
    "PReLU": lambda x, slope, data: _prelu(x, slope),
    "MatMul": lambda a, b, data: _matmul(a, b, data),
    "ReduceMean": lambda x, axes, data: _reduce_mean(x, axes, data),
    "Concat": _concat,
    "Gather": lambda x, indices, axis, data: _gather(x, indices, axis),
    "Reshape": lambda x, pattern, data: _reshape(x, pattern, data),
    "ShapeOf": lambda x, data: torch.tensor(x.shape, dtype=torch.int64),
    "Unsqueeze": lambda x, axes, data: _unsqueeze(x, axes),
    "Squeeze": lambda x, *axes, data: _squeeze(x, *axes),
    "Convolution": lambda x, w, data: _conv(x, w, data),
    "GroupConvolution": lambda x, w, data: _group_conv(x, w, data),
    "GroupConvolutionBackpropData": _group_deconv,
    "Broadcast": _broadcast,
    "Tile": lambda x, repeats, data: x.repeat(_shape(repeats)),
    "VariadicSplit": lambda x, axis, lengths, data: _split(x, axis, lengths),
}


class IRGraph(nn.Module):
    """The graph of ``xml_path`` with the constants ``tensors`` (from ``read_constants``)."""

    def __init__(self, xml_path: Path, tensors: dict[str, Tensor]):
        super().__init__()
        self.layers, self.input_id, self.output_id = parse(xml_path)
        self.integers: dict[str, Tensor] = {}
        for layer in self.layers:
            if layer.type != "Const":
                continue
            key = f"c{layer.id}"
            if key not in tensors:
                raise ModelError(f"{xml_path}: the weights have no constant {layer.id}")
            value = tensors[key]
            if value.is_floating_point():
                self.register_buffer(key, value.float(), persistent=True)
            else:
                self.integers[key] = value.to(torch.int64)
        # Each value is dropped after the last layer that reads it (a 1024 px graph holds gigabytes otherwise).
        last: dict[tuple[str, str], int] = {}
        for index, layer in enumerate(self.layers):
            last.update({source: index for source in layer.inputs})
        self.drop_after: list[list[tuple[str, str]]] = [[] for _ in self.layers]
        for source, index in last.items():
            self.drop_after[index].append(source)

    def forward(self, x: Tensor, window: Window | None = None, until: str | None = None) -> Tensor:
        """The graph's output for input ``x``; with a ``window``, only that part of a convolutional output
        is computed (``Window``); with ``until``, the first output of that layer instead, the layers
        after it not run."""
        values: dict[tuple[str, str], Tensor] = {}
        for layer, done in zip(self.layers, self.drop_after, strict=True):
            if layer.type == "Parameter":
                out: Tensor | tuple[Tensor, ...] = x
            elif layer.type == "Const":
                key = f"c{layer.id}"
                out = self.integers[key] if key in self.integers else getattr(self, key)
            elif layer.type == "Result":
                return values[layer.inputs[0]]
            else:
                out = _OPS[layer.type](*(values[i] for i in layer.inputs), data=layer.data)
            if window is not None and isinstance(out, Tensor) and layer.shapes:
                out = window.crop(out, layer.shapes[0])
            if layer.id == until:
                return out[0] if isinstance(out, tuple) else out
            if isinstance(out, tuple):
                values.update({(layer.id, port): t for port, t in zip(layer.outputs, out, strict=True)})
            else:
                values[(layer.id, layer.outputs[0])] = out
            for source in done:
                values.pop(source, None)
        raise ModelError("the graph has no result")


@dataclass(frozen=True)
class Window:
    """A part of a fully convolutional graph's output, computed alone.

    Every tensor of ``start`` px or more each way (its static shape, as the XML states it) is cut to the window
    as soon as it is made, noise constants included: the layers after that point run on the window
    only. The window's edge sees zero padding where the whole graph saw its neighbours, so a band of
    ``margin`` (in fractions) along it differs from the whole output: callers keep that band out of
    what they use. ``top``, ``left``, ``bottom``, ``right`` are fractions of the output, on the
    ``start`` grid."""

    top: float
    left: float
    bottom: float
    right: float
    start: int = 64

    def crop(self, t: Tensor, full: tuple[int, ...]) -> Tensor:
        if not t.is_floating_point() or len(full) < 3 or min(full[-2], full[-1]) < self.start:
            return t  # an upsampling's half step (2h x w) is cut once it is whole
        h, w = full[-2], full[-1]
        if t.shape[-2:] != (h, w):
            return t  # already cut (it derives from a cut tensor)
        return t[..., round(self.top * h):round(self.bottom * h), round(self.left * w):round(self.right * w)]
