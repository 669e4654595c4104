"""Is the Hugging Face Hub reachable? Asked once per process, answered within seconds.

Without a network, ``huggingface_hub`` and ``datasets`` retry every request with back-off and log
each attempt: a local curation of six rows took 93 s and 157 lines. Commands that may touch the
Hub call ``check_hub()`` first: one TCP connect (DNS failure is immediate, a silent firewall costs
at most ``timeout`` seconds); when it fails, the libraries are switched to offline mode (the Hub
cache and local files only, no retries) and one line says so.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

from branchmerge.console import log

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_state: bool | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def check_hub(timeout: float = 3.0) -> bool:
    """True when the Hub answers; otherwise offline mode is on for the rest of the process."""
    global _state
    if _state is not None:
        return _state
    offline_set = [v for v in OFFLINE_VARIABLES if _truthy(os.environ.get(v))]
    if offline_set:
        _state = False
        log.warning("offline: %s is set; using local files and the Hugging Face cache only", offline_set[0])
    else:
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        url = urlparse(endpoint)
        host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            _state = True
        except OSError as exc:
            _state = False
            log.warning("offline: %s is unreachable (%s); using local files and the Hugging Face cache only",
                        host, exc.strerror or type(exc).__name__)
    if not _state:
        go_offline()
    return _state


def offline() -> bool:
    """True once ``check_hub`` found no network (or the user set offline mode)."""
    return _state is False


def go_offline() -> None:
    """Offline mode for the Hub libraries, also when they were imported before (they read it at import)."""
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
        if hasattr(datasets.config, "HF_DATASETS_OFFLINE"):
            datasets.config.HF_DATASETS_OFFLINE = True
