"""Console output and logging shared by every command.

Progress and messages go to stderr, so that machine-readable output (``--json``) on stdout
stays clean. ``-v``/``-q`` set the level once for the whole process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err = Console(stderr=True)
out = Console()
log = logging.getLogger("branchmerge")

T = TypeVar("T")
_quiet = False
_verbose = 0


def verbosity() -> int:
    """-1 with ``-q``, 0 by default, the number of ``-v`` otherwise."""
    return -1 if _quiet else _verbose


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    global _quiet, _verbose
    _quiet, _verbose = quiet, verbose
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )
    log.setLevel(level)
    # one line per HTTP request (httpx, the openai engine) only with -v; connection-level detail with -vv
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 0 else logging.WARNING)
    for name in ("httpcore", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    if quiet:
        quiet_third_parties()
    elif not err.is_terminal:  # a log file or a pipe: no carriage-return progress bars from libraries either
        no_library_bars()


def no_library_bars() -> None:
    """No progress bars from datasets / huggingface_hub (transformers follows the hub's switch), for
    processes not yet started (the variables) and for libraries already imported, which read the
    variables only at import (a second command in one process, a notebook)."""
    import os
    import sys

    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def quiet_third_parties() -> None:
    """``-q``: errors and the result line only, also from libraries that print on their own (progress
    bars of datasets/transformers/huggingface_hub, their warnings, Python warnings)."""
    import os
    import warnings

    for variable, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DATASETS_VERBOSITY", "error"),
                            ("TQDM_DISABLE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ[variable] = value
    os.environ["PYTHONWARNINGS"] = "ignore"  # child processes (recipe stages) too
    no_library_bars()
    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    log.setLevel(logging.ERROR)


def fmt_tokens(tokens: float | None) -> str:
    """11800 -> '11.8k' as in the paper's Table 1; below a thousand the count itself (48, not '0.0k')."""
    if tokens is None:
        return "n/a"
    return f"{tokens / 1000:.1f}k" if tokens >= 1000 else f"{tokens:.0f}"


def result(text: str) -> None:
    """The command's final result line on stdout: what it made and where (shown even with ``-q``)."""
    out.print(text, highlight=False, soft_wrap=True)


def progress() -> Progress:
    """A rich progress display on stderr (disabled with ``-q`` and when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=_quiet or not err.is_terminal,
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    with progress() as bar:
        task = bar.add_task(description, total=total if total is not None else _len(items))
        for item in items:
            yield item
            bar.advance(task)


def _len(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None
