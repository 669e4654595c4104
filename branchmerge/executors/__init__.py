"""Where fanned-out work runs: this machine (``local``) or a Ray cluster (``ray``).

An executor maps a module-level function over items and hands back ``(index, result)`` pairs as
each one finishes, so the caller stores every result in its run store the moment it exists: a
killed run resumes exactly as it does with the local executor, whichever executor resumes it.

``local`` runs each item in this process, one after the other; the work inside an item brings its
own parallelism (the grader's deadline-enforcing process pool, the sandbox's workers, the openai
engine's threads). ``ray`` submits each item as a Ray task with ``num_cpus`` reserved, keeps a
bounded window of tasks in flight (about two per free slot of the cluster), and yields them in the
order they finish. Ray retries a task whose worker died (``max_retries``); a task that still fails
is reported after every other task has been stored, so ``--resume`` redoes only what was lost.

Ray is the optional ``[ray]`` extra and is imported only when the ``ray`` executor is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from branchmerge.errors import UserError, choice_error

EXECUTORS = ("local", "ray")
MISSING_RAY = "--executor ray needs Ray: pip install 'branchmerge[ray]' (or choose --executor local)"


class TaskFailed(UserError):
    """Some items failed on the cluster even after Ray's retries; every finished one is stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], num_cpus: float = 1,
            label: str = "", env: dict[str, str] | None = None, most_in_flight: int | None = None,
            ) -> Iterator[tuple[int, Any]]:
        """``(index, fn(item))`` for every item, in the order they finish (``env``: environment
        variables the function needs where it runs; ``most_in_flight``: items running at once at
        most, for work whose limit is outside the cluster, such as a server's concurrency)."""
        ...

    def slots(self, num_cpus: float = 1) -> int:
        """How many items of ``num_cpus`` each can run at once."""
        ...

    def info(self) -> dict[str, Any]:
        """What stats.json/config.json record about where the run ran."""
        ...

    def close(self) -> None: ...


def require_ray() -> Any:
    """The ``ray`` module, or a one-line UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(MISSING_RAY) from None
    return ray


def get_executor(name: str = "local", address: str | None = None, workers: int | None = None) -> Executor:
    """``local``, or ``ray`` on the cluster at ``address`` (default: the cluster this process or
    machine already runs, else a new local one)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, max_in_flight=workers)
    raise choice_error("executor", name, EXECUTORS)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def slots(self, num_cpus: float = 1) -> int:
        return 1

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], num_cpus: float = 1,
            label: str = "", env: dict[str, str] | None = None, most_in_flight: int | None = None,
            ) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, fn(item)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "cpus": len(os.sched_getaffinity(0)), "workers": self.workers}

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, max_in_flight: int | None = None, max_retries: int = 3,
                 num_cpus: int | None = None) -> None:
        ray = require_ray()
        self.ray = ray
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if num_cpus is not None:
                options["num_cpus"] = num_cpus
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a local cluster"
                raise UserError(f"could not start or join the Ray cluster at {where}: {exc}") from None
            self.owned = True
        self._remotes: dict[tuple[Any, float], Any] = {}

    def slots(self, num_cpus: float = 1) -> int:
        cpus = float(self.ray.cluster_resources().get("CPU", 1))
        return max(1, int(cpus // max(num_cpus, 1e-3)))

    def info(self) -> dict[str, Any]:
        resources = self.ray.cluster_resources()
        return {"name": self.name, "ray": self.ray.__version__,
                "address": self.ray.get_runtime_context().gcs_address,
                "nodes": sum(1 for n in self.ray.nodes() if n.get("Alive")),
                "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
                "max_in_flight": self.max_in_flight}

    def _remote(self, fn: Callable[[Any], Any], num_cpus: float) -> Any:
        key = (fn, num_cpus)
        if key not in self._remotes:
            self._remotes[key] = self.ray.remote(num_cpus=num_cpus, max_retries=self.max_retries)(fn)
        return self._remotes[key]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], num_cpus: float = 1,
            label: str = "", env: dict[str, str] | None = None, most_in_flight: int | None = None,
            ) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        remote = self._remote(fn, num_cpus)
        if env:
            remote = remote.options(runtime_env={"env_vars": dict(env)})
        window = self.max_in_flight or 2 * self.slots(num_cpus)
        if most_in_flight:
            window = min(window, max(1, most_in_flight))
        flying: dict[Any, int] = {}
        failures: list[str] = []
        nxt = 0
        try:
            while nxt < len(items) or flying:
                while nxt < len(items) and len(flying) < window:
                    flying[remote.remote(items[nxt])] = nxt
                    nxt += 1
                ready, _ = ray.wait(list(flying), num_returns=1)
                for ref in ready:
                    index = flying.pop(ref)
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failures.append(f"item {index}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                        continue
                    yield index, value
        finally:
            for ref in flying:  # the caller stopped early (an error, Ctrl-C): do not leave work running
                ray.cancel(ref, force=True)
        if failures:
            raise TaskFailed(f"{len(failures)} of {len(items)} {label or 'Ray'} task(s) failed after "
                             f"{self.max_retries} retries (first: {failures[0]}); everything that finished is "
                             "stored — rerun with --resume")

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


def chunked(items: Sequence[Any], slots: int, most: int = 64, least: int = 1) -> list[list[Any]]:
    """Items cut into chunks small enough that every slot gets several (results stream back
    steadily, a lost task costs little) and large enough that per-task overhead stays small."""
    if not items:
        return []
    size = max(least, min(most, len(items) // max(1, slots * 4)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
