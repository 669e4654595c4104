"""Streaming safetensors I/O: zero-copy reads from memory maps, writes into pre-sized shards.

Reading maps each shard file copy-on-write (``mmap.ACCESS_COPY``) and wraps tensor bytes with
``torch.frombuffer``: nothing is copied until a kernel touches the pages, and those pages stay
file-backed (reclaimable) memory. Writing lays out every output shard up front from the planned
names, dtypes and shapes, so each merged tensor (or a row block of it) is written with ``pwrite``
at its final offset and freed at once: no shard buffer is held in memory.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from branchmerge.errors import UserError

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its file, dtype, shape and byte range inside the data block."""

    name: str
    path: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute file offset
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def read_header(path: Path) -> tuple[int, dict]:
    """Return (data block offset, header dict) of one safetensors file."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from exc
    return 8 + size, header


class SafetensorsModel:
    """All tensors of a model directory (one file or an index of shards), read lazily."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        files = self._shard_files()
        self.tensors: dict[str, TensorInfo] = {}
        for path in files:
            base, header = read_header(path)
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                if meta["dtype"] not in DTYPES:
                    raise UserError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
                begin, end = meta["data_offsets"]
                self.tensors[name] = TensorInfo(
                    name, path, DTYPES[meta["dtype"]], tuple(meta["shape"]), base + begin, end - begin
                )
        self.files = files
        self._maps: dict[Path, mmap.mmap] = {}

    def _shard_files(self) -> list[Path]:
        index = self.dir / INDEX_NAME
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            return [self.dir / f for f in sorted(set(weight_map.values()))]
        files = sorted(self.dir.glob("*.safetensors"))
        if not files:
            raise UserError(
                f"{self.dir}: no *.safetensors weights found; merge needs safetensors checkpoints "
                "(convert .bin checkpoints with transformers' save_pretrained first)"
            )
        return files

    def get(self, name: str) -> torch.Tensor:
        """The tensor as a view into the memory map (no copy; do not write to it)."""
        info = self.tensors[name]
        mm = self._maps.get(info.path)
        if mm is None:
            with open(info.path, "rb") as fh:
                mm = self._maps.setdefault(info.path, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY))
        if info.nbytes == 0:
            return torch.empty(info.shape, dtype=info.dtype)
        _populate(mm, info.start, info.nbytes)
        flat = torch.frombuffer(mm, dtype=info.dtype, count=info.nbytes // _itemsize(info.dtype), offset=info.start)
        return flat.view(info.shape)

    def close(self) -> None:
        self._maps.clear()  # the maps close once the last tensor view on them is gone


_MADV_POPULATE_READ = 22  # Linux >= 5.14: map the tensor's pages in one call, no copy-on-write


def _populate(mm: mmap.mmap, start: int, nbytes: int) -> None:
    """Fault in a tensor's page-cache pages with one syscall instead of one fault per page."""
    begin = start - start % mmap.PAGESIZE
    try:
        mm.madvise(_MADV_POPULATE_READ, begin, start + nbytes - begin)
    except (OSError, ValueError, AttributeError):
        pass  # older kernels: pages fault in on first touch as usual


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class _Slot:
    fd_index: int
    offset: int  # absolute file offset of the tensor's first byte
    nbytes: int


class ShardWriter:
    """Pre-sized safetensors shards written in place; thread-safe (``pwrite`` at fixed offsets).

    ``plan`` is the ordered list of (name, dtype, shape). Tensors fill shards in that order; a new
    shard starts when the next tensor would push the current one past ``shard_size`` bytes.
    """

    def __init__(self, out_dir: Path, plan: list[tuple[str, torch.dtype, tuple[int, ...]]], shard_size: int) -> None:
        groups: list[list[tuple[str, torch.dtype, tuple[int, ...]]]] = [[]]
        used = 0
        for item in plan:
            nbytes = _nbytes(item[1], item[2])
            if groups[-1] and used + nbytes > shard_size:
                groups.append([])
                used = 0
            groups[-1].append(item)
            used += nbytes
        n = len(groups)
        self.names = (
            ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        )
        self.slots: dict[str, _Slot] = {}
        self.fds: list[int] = []
        self.total_size = 0
        self.weight_map: dict[str, str] = {}
        for i, (fname, group) in enumerate(zip(self.names, groups, strict=True)):
            header: dict[str, object] = {"__metadata__": {"format": "pt"}}
            pos = 0
            for name, dtype, shape in group:
                nbytes = _nbytes(dtype, shape)
                header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
                pos += nbytes
            raw = json.dumps(header, separators=(",", ":")).encode()
            raw += b" " * (-len(raw) % 8)
            base = 8 + len(raw)
            fd = os.open(out_dir / fname, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.pwrite(fd, struct.pack("<Q", len(raw)) + raw, 0)
            os.ftruncate(fd, base + pos)
            self.fds.append(fd)
            for name, dtype, shape in group:
                start = header[name]["data_offsets"][0]  # type: ignore[index]
                self.slots[name] = _Slot(i, base + start, _nbytes(dtype, shape))
                self.weight_map[name] = fname
            self.total_size += pos

    def write(self, name: str, tensor: torch.Tensor, byte_offset: int = 0) -> None:
        """Write ``tensor`` (CPU, contiguous, final dtype) at ``byte_offset`` inside slot ``name``."""
        slot = self.slots[name]
        data = _bytes_view(tensor)
        if byte_offset + len(data) > slot.nbytes:
            raise RuntimeError(f"write past the end of tensor {name}")
        fd = self.fds[slot.fd_index]
        pos = slot.offset + byte_offset
        while data:
            done = os.pwrite(fd, data, pos)
            data = data[done:]
            pos += done

    def close(self, out_dir: Path) -> list[str]:
        """Close, and write the shard index when there is more than one shard.

        No fsync: the directory only becomes visible through the final rename (mergekit does not
        sync either), and syncing gigabytes would dominate the run time.
        """
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if len(self.names) > 1:
            index = {"metadata": {"total_size": self.total_size}, "weight_map": dict(sorted(self.weight_map.items()))}
            (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return self.names


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    n = _itemsize(dtype)
    for d in shape:
        n *= d
    return n


def _bytes_view(tensor: torch.Tensor) -> memoryview:
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.view(torch.uint8).numpy()).cast("B")
