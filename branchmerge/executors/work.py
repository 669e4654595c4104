"""The two kinds of fanned-out work: grading rows and generating samples.

``grade`` is ``verify.grade_rows`` on any executor: locally it is that call (its process pool and
the sandbox's workers bring the parallelism); on Ray the rows are cut into chunks and every chunk
is graded by a task with one CPU reserved, with one grading worker inside it. Results reach
``on_result`` row by row as chunks finish, in whatever order they finish.

``distribute`` turns an engine into one whose samples are generated on the cluster: the openai
engine as Ray tasks (each builds the same engine, fleet of ``--base-url``s included, on its worker
and answers a small chunk of samples); vLLM through ``ray.data.llm`` replicas (``executors.llm``).
Other engines (hf, replay, toy) keep generating on this machine. Either way completions come back
through the engine's ``on_complete``, so the caller's run store and ``--resume`` work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

from branchmerge.console import log, progress
from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError
from branchmerge.executors import Executor, chunked

GENERATE_CHUNK = 8  # samples per generation task: a lost task costs at most this many requests
GENERATE_CPUS = 0.25  # HTTP-bound tasks: four per CPU


# -- grading --------------------------------------------------------------------------------------


def _grade_chunk(item: tuple[list[dict[str, Any]], str | None, dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs on a Ray worker: one chunk graded with one grading process (the task holds one CPU)."""
    from branchmerge.verify import grade_rows

    rows, domain, options = item
    return grade_rows(rows, domain, workers=1, **options)


def grade(
    executor: Executor | None,
    rows: list[dict[str, Any]],
    domain: str | None = None,
    workers: int | None = None,
    show_progress: bool = False,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """``verify.grade_rows(rows, domain, workers, **options)`` on ``executor``, order kept;
    ``on_result(index, graded_row)`` is called as each row's verdict arrives."""
    from branchmerge.verify import grade_rows

    if executor is None or executor.name == "local":
        graded = grade_rows(rows, domain, workers=workers, progress=show_progress, **options)
        if on_result is not None:
            for i, row in enumerate(graded):
                on_result(i, row)
        return graded
    from branchmerge.verify.grader import _options

    _options(options)  # a bad option fails here, once, not in every task
    chunks = chunked(range(len(rows)), executor.slots(1), most=64)
    items = [([rows[i] for i in chunk], domain, options) for chunk in chunks]
    out: list[dict[str, Any] | None] = [None] * len(rows)
    with progress() as bar:
        task = bar.add_task(f"verify on {executor.name}", total=len(rows)) if show_progress else None
        for k, graded in executor.map(_grade_chunk, items, num_cpus=1, label="grading"):
            for i, row in zip(chunks[k], graded, strict=True):
                out[i] = row
                if on_result is not None:
                    on_result(i, row)
            if task is not None:
                bar.advance(task, len(graded))
    return out  # type: ignore[return-value]


# -- generation -----------------------------------------------------------------------------------


def distribute(engine: Any, executor: Executor | None) -> Any:
    """``engine`` itself on the local executor; otherwise the engine that generates on the cluster."""
    if executor is None or executor.name == "local":
        return engine
    if engine.name == "openai":
        spec = engine.spec()
        close = getattr(engine, "close", None)
        if close is not None:
            close()
        return RayTaskEngine(executor, "openai", spec["model"], spec["options"])
    if engine.name == "vllm":
        from branchmerge.executors.llm import RayDataVLLM

        return RayDataVLLM(executor, engine.model, engine.options)
    log.info("the %s engine generates on this machine; --executor %s fans out verification", engine.name,
             executor.name)
    return engine


def _generate_chunk(item: tuple[str, str, dict[str, Any], list[Request], SamplingParams, list[tuple[str, int]]],
                    ) -> tuple[list[Completion], str | None]:
    """Runs on a Ray worker: the chunk's samples from a fresh engine; the completions that finished
    come back even when others failed (the driver stores them, ``--resume`` retries the rest)."""
    from branchmerge.engines import get_engine

    name, model, options, requests, params, pairs = item
    wanted = set(pairs)
    skip = {(r.id, s) for r in requests for s in range(params.n)} - wanted
    got: list[Completion] = []
    engine = get_engine(name, model, **options)
    try:
        engine.generate(requests, params, on_complete=got.append, skip=skip)
        error = None
    except UserError as exc:
        error = str(exc)
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()
    return got, error


class RayTaskEngine:
    """An engine whose samples are answered by Ray tasks, ``chunk`` samples each."""

    def __init__(self, executor: Executor, engine: str, model: str, options: dict[str, Any],
                 chunk: int = GENERATE_CHUNK, num_cpus: float = GENERATE_CPUS) -> None:
        self.executor = executor
        self.name = engine
        self.model = model
        self.options = dict(options)
        self.chunk = max(1, chunk)
        self.num_cpus = num_cpus

    def info(self) -> dict[str, Any]:
        safe = {k: v for k, v in self.options.items() if "key" not in k.lower() or k == "api_key_env"}
        return {"engine": self.name, "model": self.model, "options": safe,
                "fan_out": {"executor": self.executor.name, "samples_per_task": self.chunk,
                            "num_cpus_per_task": self.num_cpus}}

    def tasks_in_flight(self) -> int | None:
        """Tasks running at once so that the fleet's servers see about ``concurrency`` requests each: every
        task builds its own fleet, which spreads its ``chunk`` requests over the servers, so the
        per-server limit holds across tasks only when the tasks together stay within it."""
        if self.name != "openai":
            return None
        from branchmerge.engines.openai import DEFAULT_CONCURRENCY, split_urls

        base_url = self.options.get("base_url")
        servers = len(split_urls(base_url)) if base_url else 1
        per_server = int(self.options.get("concurrency") or DEFAULT_CONCURRENCY)
        return max(1, -(-per_server * servers // self.chunk))

    def env(self) -> dict[str, str]:
        """The API key's variable, passed to the workers (a remote node does not have the driver's)."""
        var = self.options.get("api_key_env")
        return {var: os.environ[var]} if var and os.environ.get(var) else {}

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        work = pending(requests, params, skip)
        results = Delivered(on_complete)
        chunks = [work[i : i + self.chunk] for i in range(0, len(work), self.chunk)]
        items = []
        for chunk in chunks:
            ids = list(dict.fromkeys(r.id for r, _ in chunk))
            by_id = {r.id: r for r, _ in chunk}
            items.append((self.name, self.model, self.options, [by_id[i] for i in ids], params,
                          [(r.id, s) for r, s in chunk]))
        errors: list[str] = []
        with progress() as bar:
            task = bar.add_task(f"{self.name} {self.model} on {self.executor.name}", total=len(work))
            for _, (completions, error) in self.executor.map(_generate_chunk, items, num_cpus=self.num_cpus,
                                                             label="generation", env=self.env(),
                                                             most_in_flight=self.tasks_in_flight()):
                for completion in completions:
                    results.add(completion)
                if error:
                    errors.append(error)
                bar.advance(task, len(completions))
        if errors:
            raise UserError(f"{len(work) - len(results)} of {len(work)} sample(s) failed on the cluster (first: "
                            f"{errors[0]}); {len(results)} finished ones are stored — rerun with --resume", 1)
        return results
