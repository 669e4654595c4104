"""The streaming merge: check inputs, merge tensor by tensor into pre-sized shards, finish the model dir.

Tensors are processed in sorted-name order (mergekit's order) by a small thread pool: each job
maps its inputs, runs the kernel, writes the result at its final shard offset and drops it, so
peak memory is a few copies of the largest tensor and I/O of one job overlaps compute of another.
Random draws keep mergekit's single stream in compat mode: jobs that draw take turns in name
order (``RngTurns``); fast mode gives every tensor its own stream seeded from (seed, name).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from branchmerge.atomic import temp_path, write_json, write_text
from branchmerge.errors import UserError
from branchmerge.filehash import sha256_files
from branchmerge.merge.card import merge_card, merge_stats
from branchmerge.merge.config import MergeConfig, resolve
from branchmerge.merge.memory import MemorySampler
from branchmerge.merge.methods import Context, seed_for
from branchmerge.merge.options import Options
from branchmerge.merge.safetensors_io import SafetensorsModel, ShardWriter
from branchmerge.merge.vocab import VocabMap, is_vocab_tensor, vocab_maps
from branchmerge.outdir import claim, mark

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


@dataclass
class TensorJob:
    index: int
    name: str
    shape: tuple[int, ...]
    work_dtype: torch.dtype
    out_dtype: torch.dtype
    shared: dict[str, Any]
    per: list[dict[str, Any]]
    ticket: int | None  # position among the tensors that draw random numbers (compat)


class RngTurns:
    """One generator shared in a fixed order: ticket k draws only after tickets < k finished."""

    def __init__(self, generator: torch.Generator) -> None:
        self.gen = generator
        self.next = 0
        self.cv = threading.Condition()

    def wait(self, ticket: int) -> torch.Generator:
        with self.cv:
            self.cv.wait_for(lambda: self.next == ticket)
        return self.gen

    def finish(self, ticket: int) -> None:
        with self.cv:
            self.cv.wait_for(lambda: self.next == ticket)
            self.next += 1
            self.cv.notify_all()


class _Turn:
    """One job's turn on the shared stream (compat): entered once for the job's one block of
    draws and given up when that block ends, or when the job ends without drawing."""

    def __init__(self, turns: RngTurns, ticket: int | None) -> None:
        self.turns, self.ticket, self.used, self.finished = turns, ticket, False, False

    def __enter__(self) -> torch.Generator:
        if self.used:
            raise RuntimeError("a compat kernel must draw all of a tensor's random numbers in one block")
        self.used = True
        assert self.ticket is not None
        return self.turns.wait(self.ticket)

    def __exit__(self, *exc: object) -> None:
        self.done()

    def done(self) -> None:
        if self.ticket is not None and not self.finished:
            self.finished = True
            self.turns.finish(self.ticket)


def _config_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except FileNotFoundError as exc:
        raise UserError(f"{path}: config.json is missing; inputs must be Hugging Face model directories") from exc
    except ValueError as exc:
        raise UserError(f"{path}/config.json: not valid JSON ({exc})") from exc


def plan_merge(cfg: MergeConfig, models: list[SafetensorsModel], opts: Options) -> tuple[list[TensorJob], dict[int, VocabMap]]:
    """Check every input against the reference model and build one job per output tensor.

    Raises ``UserError`` naming the first offending model/tensor before anything is written.
    """
    ref_i = cfg.reference
    ref = cfg.models[ref_i]
    configs = [_config_json(m.path) for m in cfg.models]
    for m, c in zip(cfg.models, configs, strict=True):
        if c.get("architectures") != configs[ref_i].get("architectures"):
            raise UserError(
                f"architecture mismatch: {m.ref} is {c.get('architectures')} but {ref.ref} is "
                f"{configs[ref_i].get('architectures')}; only models of one architecture can be merged"
            )
    names = sorted(models[ref_i].tensors)
    for m, sm in zip(cfg.models, models, strict=True):
        missing = sorted(set(names) - set(sm.tensors))
        extra = sorted(set(sm.tensors) - set(names))
        if missing:
            raise UserError(f"tensor {missing[0]} is in {ref.ref} but missing from {m.ref} ({len(missing)} missing)")
        if extra:
            raise UserError(f"tensor {extra[0]} is in {m.ref} but not in {ref.ref} ({len(extra)} extra)")
    maps = vocab_maps(cfg, models, configs, ref_i)
    vocab_tensors = {name for vm in maps.values() for name in vm.tensors}
    num_layers = int(configs[ref_i].get("num_hidden_layers") or 0)
    method = cfg.method
    jobs: list[TensorJob] = []
    tickets = 0
    tok_i = cfg.models.index(cfg.tokenizer_model)
    for name in names:
        infos = [sm.tensors[name] for sm in models]
        shape = infos[tok_i if name in vocab_tensors else ref_i].shape
        for m, info in zip(cfg.models, infos, strict=True):
            if info.shape != shape and name not in vocab_tensors:
                hint = " (a vocabulary mismatch? set tokenizer_source: base)" if is_vocab_tensor(name) else ""
                raise UserError(f"shape mismatch in tensor {name}: {m.ref} has {list(info.shape)}, {ref.ref} has {list(shape)}{hint}")
        floating = [i.dtype.is_floating_point for i in infos]
        if not all(floating):
            if any(floating):
                raise UserError(f"tensor {name} is floating point in some inputs and not in others")
            jobs.append(TensorJob(len(jobs), name, shape, infos[0].dtype, infos[0].dtype, {}, [], None))
            continue
        work = _dtype(cfg.dtype) if cfg.dtype else _promote([i.dtype for i in infos])
        out = _dtype(cfg.out_dtype or cfg.dtype) if (cfg.out_dtype or cfg.dtype) else work
        shared, per = resolve(cfg, name, num_layers)
        numel = 1
        for d in shape:
            numel *= d
        ticket = None
        if opts.mode == "compat" and method.draws(shared, per, numel):
            ticket, tickets = tickets, tickets + 1
        jobs.append(TensorJob(len(jobs), name, shape, work, out, shared, per, ticket))
    return jobs, maps


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _promote(dtypes: list[torch.dtype]) -> torch.dtype:
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out


def _hash_inputs(paths: list[Path], result: dict[str, str], counts: dict[str, int]) -> None:
    """sha256 of each input file (unchanged files from the cache: see ``filehash``)."""
    digests, hashed = sha256_files(paths)
    result.update(digests)
    counts["hashed"], counts["cached"] = hashed, len(paths) - hashed


class _Runner:
    """Executes the jobs: loads, merges, writes; collects per-tensor facts."""

    def __init__(self, cfg: MergeConfig, models: list[SafetensorsModel], maps: dict[int, VocabMap], writer: ShardWriter, opts: Options) -> None:
        self.cfg, self.models, self.maps, self.writer, self.opts = cfg, models, maps, writer, opts
        self.device = torch.device(opts.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(opts.seed)
        self.turns = RngTurns(gen)
        self.tensor_stats: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def run(self, job: TensorJob) -> None:
        turn = _Turn(self.turns, job.ticket)
        try:
            self._merge(job, turn)
        finally:
            turn.done()

    @contextlib.contextmanager
    def _generator(self, job: TensorJob, turn: _Turn) -> Iterator[torch.Generator]:
        """The tensor's generator for one block of draws.

        compat: the shared stream, held from this tensor's turn until the block ends, so the
        next tensor may draw while this one finishes its (non-random) work.
        """
        if job.ticket is not None:
            with turn as gen:
                yield gen
            return
        if self.opts.mode == "compat":
            raise RuntimeError(f"{job.name}: random draw without a turn in compat mode")
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed_for(self.opts.seed, job.name))
        yield gen

    def _load(self, job: TensorJob) -> list[torch.Tensor]:
        ts = []
        for i, sm in enumerate(self.models):
            t = sm.get(job.name)
            vm = self.maps.get(i)
            if vm is not None and job.name in vm.tensors:
                t = vm.apply(t, self.models[vm.fill_from].get(job.name))
            ts.append(t.to(device=self.device, dtype=job.work_dtype))
        return ts

    def _merge(self, job: TensorJob, turn: _Turn) -> None:
        ts = self._load(job)
        if not job.work_dtype.is_floating_point:
            if any(not torch.equal(ts[0], t) for t in ts[1:]):
                raise UserError(f"non-float tensor {job.name} differs between inputs; cannot merge it")
            self.writer.write(job.name, ts[0])
            return
        ctx = Context(out_dtype=job.out_dtype, mode=self.opts.mode, rng=lambda: self._generator(job, turn))
        out = self.cfg.method.kernel(ts, self.cfg.base, job.shared, job.per, ctx)
        del ts
        if tuple(out.shape) != job.shape or out.dtype != job.out_dtype:
            raise RuntimeError(f"{self.cfg.method.name} returned {out.dtype}{list(out.shape)} for {job.name}")
        self.writer.write(job.name, out)
        if ctx.stats:
            with self.lock:
                self.tensor_stats[job.name] = ctx.stats


def run_merge(cfg: MergeConfig, out_dir: str | Path, opts: Options, config_text: str | None = None,
              overwrite: bool = False) -> dict[str, Any]:
    """Merge ``cfg`` into ``out_dir`` (written under a temporary name, then renamed); return stats.json's content.

    ``out_dir`` must be new or empty, or an earlier merge output with ``overwrite``: a folder holding
    anything else is refused before any tensor is read.
    """
    from branchmerge.console import progress

    claim(out_dir, "merge", overwrite=overwrite, resumable=False, check_only=True)  # replaced whole at the end

    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {opts.device}: CUDA is not available on this machine; use --device cpu")
    started = time.time()
    sampler = MemorySampler()
    sampler.start()
    if opts.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(opts.device)
    models = [SafetensorsModel(m.path) for m in cfg.models]
    jobs, maps = plan_merge(cfg, models, opts)
    hashes: dict[str, str] = {}
    hash_counts: dict[str, int] = {}
    hasher = threading.Thread(target=_hash_inputs, args=([f for sm in models for f in sm.files], hashes, hash_counts),
                              daemon=True)
    hasher.start()
    out_dir = Path(out_dir)
    with temp_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        writer = ShardWriter(tmp, [(j.name, j.out_dtype, j.shape) for j in jobs], opts.shard_size)
        runner = _Runner(cfg, models, maps, writer, opts)
        try:
            with _no_cyclic_gc():
                _execute(runner, jobs, opts.workers, progress)
        finally:
            shard_names = writer.close(tmp)
        hasher.join()
        elapsed = time.time() - started
        _copy_side_files(cfg, tmp, jobs, maps)
        stats = merge_stats(cfg, opts, jobs, runner.tensor_stats, shard_names, hashes, elapsed, sampler, out_dir,
                            hash_counts.get("hashed"))
        stats.write(tmp / stats.FILE)
        write_text(tmp / "README.md", merge_card(cfg, stats))
        if config_text is not None:
            write_text(tmp / "mergekit_config.yml", config_text)
        for f in tmp.iterdir():
            f.chmod(0o644)  # temp files are created private
        mark(tmp, "merge")
    for sm in models:
        sm.close()
    return stats.dump()


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The merge loop makes no reference cycles worth collecting, but its many short-lived tensor
    objects trigger collections that walk every object torch's import left behind (~3% of the
    CPU of an arcee_fusion merge); the previous setting is restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _ByteBudget:
    """Admits jobs in order while their estimated scratch fits: big tensors run alone, small ones together."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self.cv = threading.Condition()

    def acquire(self, amount: int) -> int:
        amount = min(amount, self.budget)
        with self.cv:
            self.cv.wait_for(lambda: self.used + amount <= self.budget)
            self.used += amount
        return amount

    def release(self, amount: int) -> None:
        with self.cv:
            self.used -= amount
            self.cv.notify_all()


def scratch_bytes(job: TensorJob, n_inputs: int, mode: str, method: str) -> int:
    """Rough peak scratch of one job: converted inputs, method temporaries, the output buffer."""
    n = _numel(job.shape)
    work = torch.empty((), dtype=job.work_dtype).element_size()
    out = torch.empty((), dtype=job.out_dtype).element_size()
    extra = 12 if (method in ("ties",) and mode == "compat") else 4  # selection: keys, masks, int32 indices, stop positions
    return n * ((n_inputs + 1) * work + out + extra)


def _execute(runner: _Runner, jobs: list[TensorJob], workers: int, progress: Any) -> None:
    """Run jobs in order, at most ``workers`` at once and within a scratch-memory budget.

    The budget is the largest single job's estimate, so peak memory stays near one large tensor's
    working set while small tensors still overlap.
    """
    n_inputs = len(runner.models)
    method, mode = runner.cfg.method.name, runner.opts.mode
    sizes = [scratch_bytes(j, n_inputs, mode, method) for j in jobs]
    budget = _ByteBudget(max([*sizes, 64 << 20]))
    slots = threading.BoundedSemaphore(workers)
    errors: list[BaseException] = []
    with progress() as bar, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as pool:
        task = bar.add_task(f"merging ({method})", total=len(jobs))
        for job, size in zip(jobs, sizes, strict=True):
            slots.acquire()
            held = budget.acquire(size)
            if errors:
                budget.release(held)
                slots.release()
                if job.ticket is not None:  # keep the turn order moving for jobs already queued
                    runner.turns.finish(job.ticket)
                continue

            def done(fut: Any, held: int = held) -> None:
                budget.release(held)
                slots.release()
                if fut.exception() is not None:
                    errors.append(fut.exception())
                bar.advance(task)

            pool.submit(runner.run, job).add_done_callback(done)
    if errors:
        raise errors[0]


def _copy_side_files(cfg: MergeConfig, tmp: Path, jobs: list[TensorJob], maps: dict[int, VocabMap]) -> None:
    ref = cfg.models[cfg.reference].path
    tok = cfg.tokenizer_model.path
    conf = json.loads((ref / "config.json").read_text())
    dtype_name = cfg.out_dtype or cfg.dtype
    if dtype_name:
        keys = [k for k in ("dtype", "torch_dtype") if k in conf] or ["dtype"]
        for k in keys:
            conf[k] = dtype_name
    rows = {vm.rows for vm in maps.values()}
    if rows:
        conf["vocab_size"] = rows.pop()
    write_json(tmp / "config.json", conf)
    for name in ("generation_config.json", *TOKENIZER_FILES):
        if (tok / name).exists():
            shutil.copy2(tok / name, tmp / name)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
