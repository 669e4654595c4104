"""How a merge runs (mode, seed, shard size, device, threads), declared once for the API and the CLI.

Kept apart from ``engine`` so that building the command line does not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.settings import setting

MODES = ("compat", "fast")


def parse_size(value: Any, where: str = "--shard-size") -> int:
    """'5B', '500M', '2GB', '1e9' or a plain byte count -> bytes (K/M/B are 1e3/1e6/1e9, as in mergekit)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGB]?)B?\s*", str(value).upper())
    if not m:
        raise UserError(f"{where} {value!r}: expected a size such as 5B, 500M or 2000000000")
    scale = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}[m.group(2)]
    try:
        return int(float(m.group(1)) * scale)
    except ValueError:
        raise UserError(f"{where} {value!r}: not a number") from None


@dataclass(frozen=True)
class Options:
    """How a merge runs (the config says what is merged); declared once for the API and the CLI."""

    mode: str = setting("compat", choices=MODES, help="compat (bit-identical to mergekit 0.1.5) or fast.")
    seed: int = setting(0, help="Seed for random draws (DARE masks, arcee_fusion quantile samples).")
    shard_size: int = setting(5_000_000_000, ge=1, convert=parse_size, metavar="SIZE",
                              help="Max bytes per output shard (K/M/B suffixes, e.g. 5B or 500M).")
    device: str = setting("cpu", help="Math device: cpu, cuda, cuda:1.")
    workers: int = setting(2, flag="--threads", aliases=("--workers",), ge=1,
                           help="Tensors merged at once (threads in this process).")

    def __post_init__(self) -> None:
        settings.validate(self)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise UserError(f"--device {self.device!r}: expected cpu, cuda or cuda:N")
