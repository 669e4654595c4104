"""The curation pipeline: source -> teacher -> verify -> format -> length -> dedup -> decontam -> select.

Every stage passes rows on or rejects them with a reason, and the funnel counts both, so every
dropped row is accounted for (``rejected/*.parquet``). Only the teacher and the verifier cost
real time or money, so only they persist progress: completions go to the run store
(``shards/``) the moment they finish and verdicts to ``verdicts/shards/``. Everything after is
a pure function of those rows in source order, so a run killed at any point and resumed writes
exactly the dataset an uninterrupted run writes.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from branchmerge.atomic import temp_path, write_json
from branchmerge.console import log, track
from branchmerge.contracts import CurationStats
from branchmerge.curate import dedup, filters
from branchmerge.curate.adapters import AdapterContext, Item, adapt, choose_adapter
from branchmerge.curate.config import CurateConfig
from branchmerge.curate.decontam import build_index
from branchmerge.curate.sources import Source, check_source, open_source
from branchmerge.curate.teachers import build_teacher, check_teacher_key
from branchmerge.engines.base import Completion, Request
from branchmerge.errors import UserError
from branchmerge.outdir import claim
from branchmerge.records import RunStore, write_parquet

VERIFY_BATCH = 2048
PARQUET_ROWS = 20_000  # rows per Parquet file
REJECTED_FIELDS = ("id", "sample_idx", "domain", "source", "stage", "reason", "detail", "prompt", "completion",
                   "reasoning", "answer", "finish_reason", "verdict", "verdict_detail", "reference", "meta",
                   "model", "prompt_tokens", "completion_tokens")
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
# Kept rows whose byte length already proves they fit are not all tokenized for the card's statistics:
# above this many, a fixed random sample of them is, and the statistics say they are estimated.
LENGTH_SAMPLE = 512
# Settings that decide what the stored completions are; a resumed run must keep them.
RUN_IDENTITY = ("domain", "source", "split", "subset", "revision", "schema", "map", "prompt_template", "teacher",
                "engine", "model", "n_samples", "temperature", "top_p", "max_new_tokens", "seed")


class Funnel:
    """Counts in and out of each stage, with the reasons for what was dropped, and the dropped rows."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}

    def stage(self, name: str, unit: str, n_in: int, kept: int, drops: list[tuple[dict[str, Any], str, str]]) -> None:
        reasons = Counter(reason for _, reason, _ in drops)
        self.stages.append({"stage": name, "unit": unit, "in": n_in, "out": kept, "dropped": len(drops),
                            "reasons": dict(sorted(reasons.items()))})
        for row, reason, detail in drops:
            out = {name_: row.get(name_) for name_ in REJECTED_FIELDS}
            out.update(stage=name, reason=reason, detail=detail)
            self.rejected.append(out)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def curate(config: CurateConfig) -> Path:
    """Run curation as configured; returns the output directory."""
    return Curation(config).run()


class Curation:
    def __init__(self, config: CurateConfig) -> None:
        self.config = config
        self.out = config.out_dir
        self.funnel = Funnel()
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}
        self.counter: filters.TokenLength | None = None
        self.resumed = False
        self.length_weights: dict[int, float] = {}  # row index -> rows it stands for (sampled statistics)
        if config.max_tokens_length and not config.student_tokenizer:
            raise UserError("--max-tokens-length needs --student-tokenizer (lengths are measured in the "
                            "student's tokens, after its chat template)")

    # -- stages ---------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.config
        check_teacher_key(cfg)  # before the output folder, the source download or any request
        check_source(cfg.source)
        self.check_resume()
        if cfg.student_tokenizer:  # loaded before the source and the teacher: a bad tokenizer fails first
            with self.funnel.timed("startup"):
                self.counter = filters.TokenLength(cfg.student_tokenizer, cfg.chat_template)
            self.extra["length_tokenizer"] = {"name": self.counter.name, "chat_template": cfg.chat_template,
                                              "templated": self.counter.templated}
        with self.funnel.timed("source"):
            source, adapter, items = self.load_items()
        with self.funnel.timed("generate"):
            rows, teacher = self.generate(items)
        with self.funnel.timed("verify"):
            rows = self.verify(rows, items)
        rows = self.apply("verify", rows, self.verdict_filter)
        with self.funnel.timed("format"):
            rows = self.apply("format", rows, self.format_filter)
        with self.funnel.timed("length"):
            rows = self.length(rows)
        with self.funnel.timed("dedup"):
            rows = self.dedup(rows)
        with self.funnel.timed("decontam"):
            rows = self.decontaminate(rows)
        with self.funnel.timed("length"):  # student lengths: all rows for "shortest", else only kept ones
            rows = self.measure(rows) if cfg.select == "shortest" else rows
        with self.funnel.timed("select"):
            rows = self.select(rows)
        with self.funnel.timed("length"):
            rows = self.measure(rows, sample=LENGTH_SAMPLE)
        with self.funnel.timed("write"):
            self.write(rows, source, adapter, teacher)
        from branchmerge.curate.card import write_card

        write_card(self.out)
        if cfg.push_to_hub:
            push_to_hub(self.out, cfg.push_to_hub)
        log.info("curated %d rows into %s", len(rows), self.out)
        return self.out

    def check_resume(self) -> None:
        """Claim --out; refuse to resume a run whose stored completions answer other questions
        (source, teacher, prompt)."""
        cfg = self.config
        self.resumed = claim(self.out, "curation", resume=cfg.resume, overwrite=cfg.overwrite,
                             has_results=lambda p: RunStore(p).has_rows())
        path = self.out / "run.json"
        mine = {k: v for k, v in cfg.to_dict().items() if k in RUN_IDENTITY}
        if self.resumed and path.exists():
            before = json.loads(path.read_text(encoding="utf-8"))
            changed = [f"{k}: {before.get(k)!r} -> {mine.get(k)!r}" for k in RUN_IDENTITY if before.get(k) != mine.get(k)]
            if changed:
                raise UserError(f"{self.out} was started with other settings ({'; '.join(changed)}); resume with "
                                "the original ones, --overwrite to start again, or use another --out")
        write_json(path, mine)

    def load_items(self) -> tuple[Source, str, list[Item]]:
        cfg = self.config
        source = open_source(cfg.source, cfg.split, cfg.subset, cfg.revision, streaming=cfg.limit is not None)
        adapter = choose_adapter(source.columns, cfg.domain, source.name, cfg.schema, cfg.map)
        ctx = AdapterContext(cfg.domain, source.name, cfg.prompt_template, cfg.map,
                             has_domain_column="domain" in source.columns)
        if adapter == "openthoughts" and not ctx.has_domain_column:
            self.warn(f"{source.name} has no 'domain' column: every row is taken as {cfg.domain}; "
                      "use the metadata config (--subset metadata) to pick one domain")
        items: list[Item] = []
        taken = read = 0
        if cfg.source_verdict and cfg.source_verdict not in source.columns:
            raise UserError(f"--source-verdict {cfg.source_verdict}: {source.name} has no such column (columns: "
                            f"{', '.join(source.columns)})")
        for index, raw in source.rows():
            read += 1
            item = adapt(adapter, raw, index, ctx, cfg.where)
            if cfg.source_verdict and item.problem is not None:
                item.source_verdicts = source_labels(raw.get(cfg.source_verdict), len(item.replays) or 1)
            items.append(item)
            taken += item.problem is not None
            if cfg.limit is not None and taken >= cfg.limit:
                break
        drops = [({"id": f"source-row-{it.index}", "source": source.name, "domain": cfg.domain}, it.reject or "",
                  it.detail) for it in items if it.problem is None]
        self.funnel.stage("source", "source rows", read, taken, drops)
        if taken == 0:
            raise UserError(f"no usable problem in {source.name} ({read} row(s) read, reasons: "
                            f"{self.funnel.stages[-1]['reasons']}); check --where, --map and the source")
        return source, adapter, [it for it in items if it.problem is not None]

    def generate(self, items: list[Item]) -> tuple[list[dict[str, Any]], Any]:
        problems = {it.problem["id"]: it.problem for it in items}
        teacher = build_teacher(self.config, items)
        store = RunStore(self.out, ("id", "sample_idx"), "generation")
        done = store.open(self.resumed)

        def on_complete(c: Completion) -> None:
            problem = problems[c.request_id]
            row = {**problem, **c.to_row()}
            if c.error:
                row["meta"] = {**problem["meta"], "teacher_error": c.error}
            store.append(row)

        requests = [Request(pid, messages=[{"role": "user", "content": p["prompt"]}]) for pid, p in problems.items()]
        from branchmerge.engines.base import pending
        from branchmerge.executors.work import distribute

        engine = distribute(teacher.engine, self.executor) if pending(requests, teacher.params, done) else None
        try:
            if engine is not None:
                engine.generate(requests, teacher.params, on_complete=on_complete, skip=done)
        finally:
            store.close()
            close = getattr(engine or teacher.engine, "close", None)
            if close is not None:
                close()
        order = {pid: i for i, pid in enumerate(problems)}
        rows = sorted((r for r in store.rows() if r["id"] in order), key=lambda r: (order[r["id"]], r["sample_idx"]))
        answered = {r["id"] for r in rows}
        drops = [(p, "no_completion", "the teacher returned nothing for this problem")
                 for pid, p in problems.items() if pid not in answered]
        self.funnel.stage("generate", "problems -> completions", len(problems), len(rows), drops)
        spent = [r for r in rows if r.get("completion_tokens") is not None]
        self.extra["teacher_tokens"] = {
            "prompt": sum(r.get("prompt_tokens") or 0 for r in spent),
            "completion": sum(r["completion_tokens"] for r in spent),
            "rows_with_counts": len(spent), "rows": len(rows),
        }
        return rows, teacher

    @property
    def executor(self) -> Any:
        """Where generation and verification run (``--executor``), started on first use."""
        if "executor" not in self.extra:
            from branchmerge.executors import get_executor

            self._executor = get_executor(self.config.executor, self.config.ray_address, self.config.workers)
            self.extra["executor"] = self._executor.info()
        return self._executor

    def verify(self, rows: list[dict[str, Any]], items: list[Item]) -> list[dict[str, Any]]:
        from branchmerge.executors.work import grade

        store = RunStore(self.out / "verdicts", ("id", "sample_idx"), schema=None)
        store.open(resume=True)
        try:
            known = {(v["id"], v["sample_idx"]): v for v in store.rows()}
            pending = [r for r in rows if r.get("reference") is not None and (r["id"], r["sample_idx"]) not in known]
            batches = [pending[i : i + VERIFY_BATCH] for i in range(0, len(pending), VERIFY_BATCH)]
            def keep(_: int, graded: dict[str, Any]) -> None:
                verdict = {"id": graded["id"], "sample_idx": graded["sample_idx"], "verdict": graded["verdict"],
                           "verdict_detail": graded["verdict_detail"]}
                store.append(verdict)
                known[(graded["id"], graded["sample_idx"])] = verdict

            for batch in track(batches, "verify", total=len(batches)) if batches else ():
                grade(self.executor, batch, self.config.domain, workers=self.config.workers, on_result=keep)
        finally:
            store.close()
        out = []
        for row in rows:
            v = known.get((row["id"], row["sample_idx"]))
            if v is None:
                out.append({**row, "verdict": None, "verdict_detail": {"reason": "no reference to verify against"}})
            else:
                out.append({**row, "verdict": v["verdict"], "verdict_detail": v["verdict_detail"]})
        self.extra["source_labels"] = source_label_agreement(out, items)
        if self.config.source_verdict:
            out = self.source_verdicts(out, items)
        return out

    def source_verdicts(self, rows: list[dict[str, Any]], items: list[Item]) -> list[dict[str, Any]]:
        """``--source-verdict COLUMN``: the source's label decides; ours stays in the detail (and the
        agreement counts in stats), so a reproduction keeps exactly the rows the release kept."""
        column = self.config.source_verdict
        labels = {(it.problem["id"], i): lab for it in items for i, lab in enumerate(it.source_verdicts)}
        out = []
        for row in rows:
            label = labels.get((row["id"], row["sample_idx"]))
            if label is None:
                out.append(row)  # no label for this completion: our verdict stands
                continue
            detail = {"rule": f"source column {column}", "ours": row["verdict"],
                      "ours_detail": row.get("verdict_detail")}
            out.append({**row, "verdict": "correct" if label else "incorrect", "verdict_detail": detail})
        return out

    def apply(self, name: str, rows: list[dict[str, Any]],
              check: Callable[[dict[str, Any]], tuple[str, str] | None]) -> list[dict[str, Any]]:
        kept, drops = [], []
        for row in rows:
            why = check(row)
            if why is None:
                kept.append(row)
            else:
                drops.append((row, *why))
        self.funnel.stage(name, "completions", len(rows), len(kept), drops)
        return kept

    def verdict_filter(self, row: dict[str, Any]) -> tuple[str, str] | None:
        if not self.config.require_correct or row["verdict"] == "correct":
            return None
        if row["verdict"] is None:
            return "no_reference", "the problem has no reference answer or tests to verify against"
        detail = row.get("verdict_detail") or {}
        said = ", ".join(f"{k} {str(detail[k])[:200]!r}" for k in ("extracted", "gold", "rule") if detail.get(k))
        return row["verdict"], said or json.dumps(detail, default=str)[:500]

    def format_filter(self, row: dict[str, Any]) -> tuple[str, str] | None:
        bad = filters.format_problem(row)
        if bad is not None:
            return bad
        loop = filters.repetition(row.get("completion") or "", self.config.max_repeat_lines,
                                  self.config.min_tail_compression)
        return ("repetition", loop) if loop else None

    def length(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop examples over the limit.

        Tokenizing is the costly part, so it is done only where it can change the result: a row that
        surely fits (byte bound) is counted later, when kept; with ``--select first`` a problem's rows
        are examined in order until it has as many fitting rows as the selection keeps (the others
        would be dropped by the selection anyway). The kept dataset is the same as with every row measured.
        """
        cfg = self.config
        limit = cfg.max_tokens_length
        if not limit:
            self.funnel.stage("length", "completions", len(rows), len(rows), [])
            return rows
        rows = list(rows)
        if cfg.select != "first":
            self._measure_unsure(rows, list(range(len(rows))), limit)
        else:
            cap = cfg.max_per_problem or 1
            groups: dict[str, list[int]] = defaultdict(list)
            for i, row in enumerate(rows):
                groups[row["id"]].append(i)
            fitting: Counter[str] = Counter()
            step = 0
            while batch := [idx[step] for pid, idx in groups.items() if fitting[pid] < cap and step < len(idx)]:
                self._measure_unsure(rows, batch, limit)
                fitting.update(rows[i]["id"] for i in batch if rows[i].get("num_tokens", 0) <= limit)
                step += 1
        return self.apply("length", rows, lambda r: ("too_long", f"{r['num_tokens']} tokens > {limit}")
                          if r.get("num_tokens", 0) > limit else None)

    def _measure_unsure(self, rows: list[dict[str, Any]], indices: list[int], limit: int) -> None:
        pieces = {i: self.counter.pieces(filters.messages(rows[i])) for i in indices}
        unsure = [i for i, p in pieces.items() if not self.counter.within(p, limit)]
        for i, n in zip(unsure, self.counter.count_pieces([pieces[i] for i in unsure]), strict=True):
            rows[i] = {**rows[i], "num_tokens": n}

    def measure(self, rows: list[dict[str, Any]], sample: int | None = None) -> list[dict[str, Any]]:
        """Fill ``num_tokens`` (student tokens, chat template applied) where it is still missing.

        With ``sample``, at most that many of the missing rows are counted, chosen at random with a
        fixed seed; ``self.length_weights`` then gives each counted row the share of the uncounted rows
        it stands for, so the card's statistics are an unbiased estimate, and labelled as one."""
        if self.counter is None:
            return rows
        todo = [i for i, r in enumerate(rows) if "num_tokens" not in r]
        if sample is not None and len(todo) > sample:
            import random

            weight = len(todo) / sample
            todo = sorted(random.Random(0).sample(todo, sample))
            self.length_weights = {i: weight for i in todo}
        counts = self.counter.count([filters.messages(rows[i]) for i in todo])
        rows = list(rows)
        for i, n in zip(todo, counts, strict=True):
            rows[i] = {**rows[i], "num_tokens": n}
        return rows

    def dedup(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cfg = self.config
        if not cfg.dedup:
            self.extra["dedup"] = {"method": "off (--no-dedup)"}
            return self.apply("dedup", rows, lambda r: None)
        firsts: dict[str, dict[str, Any]] = {}
        for row in rows:
            firsts.setdefault(row["id"], row)
        ids = list(firsts)
        dups = dedup.find_duplicates([firsts[i]["prompt"] for i in ids], cfg.near_dup_threshold,
                                     cfg.minhash_perms, cfg.shingle_words)
        bands, per_band = dedup.lsh_bands(cfg.minhash_perms, cfg.near_dup_threshold)
        self.extra["dedup"] = {"method": "exact normalized text, then MinHash LSH (numpy)",
                               "shingle_words": cfg.shingle_words, "perms": cfg.minhash_perms, "bands": bands,
                               "rows_per_band": per_band, "threshold": cfg.near_dup_threshold,
                               "problems_in": len(ids), "problems_dropped": len(dups)}
        why = {ids[i]: (f"{d.kind}_duplicate", f"of {ids[d.kept]} (estimated Jaccard {d.similarity})")
               for i, d in dups.items()}
        return self.apply("dedup", rows, lambda r: why.get(r["id"]))

    def decontaminate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cfg = self.config
        specs = cfg.decontam_benchmarks
        index = build_index(specs, cfg.decontam_ngram)
        for message in index.warnings:
            self.warn(message)
        self.extra["decontamination"] = {"ngram": cfg.decontam_ngram, "requested": specs, "loaded": index.loaded,
                                         "skipped": index.warnings}
        hits: dict[str, str | None] = {}
        for row in rows:
            if row["id"] not in hits:
                hits[row["id"]] = index.hits(row["prompt"])
        return self.apply("decontam", rows, lambda r: ("contaminated", f"shares a {cfg.decontam_ngram}-gram with "
                                                       f"{hits[r['id']]}") if hits[r["id"]] else None)

    def select(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cfg = self.config
        cap = cfg.max_per_problem or (None if cfg.select == "all" else 1)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[row["id"]].append(row)
        chosen: set[tuple[str, int]] = set()
        for group in groups.values():
            if cfg.select == "shortest":
                group = sorted(group, key=lambda r: (_length(r), r["sample_idx"]))
            chosen.update((r["id"], r["sample_idx"]) for r in group[:cap])
        detail = f"--select {cfg.select} keeps {cap or 'every'} completion(s) per problem"
        return self.apply("select", rows, lambda r: None if (r["id"], r["sample_idx"]) in chosen
                          else ("not_selected", detail))

    # -- output ---------------------------------------------------------------------------------
    def write(self, rows: list[dict[str, Any]], source: Source, adapter: str, teacher: Any) -> None:
        cfg = self.config
        counted = {} if self.counter is None else {"num_tokens": None}  # a sampled run: null where not counted
        data = [{**counted, **row, "messages": filters.messages(row)} for row in rows]
        write_parquet_dir(self.out / "data", "train", data)
        write_parquet_dir(self.out / "rejected", "rejected", self.funnel.rejected)
        counted = [i for i, r in enumerate(rows) if r.get("num_tokens") is not None]
        lengths = [rows[i]["num_tokens"] for i in counted]
        weights = [self.length_weights.get(i, 1.0) for i in counted]
        length_kind = "student tokens (chat template applied)" if lengths else "teacher completion tokens"
        if self.length_weights:
            length_kind += (f", estimated: {len(counted)} of {len(rows)} rows tokenized (every row near the limit, "
                            f"and a fixed random sample of {len(self.length_weights)} of the rows whose byte "
                            "length proves they fit)")
        if not lengths:
            lengths = [r["completion_tokens"] for r in rows if r.get("completion_tokens") is not None]
            weights = [1.0] * len(lengths)
        stats = {
            "domain": cfg.domain,
            "rows": len(rows),
            "problems": len({r["id"] for r in rows}),
            "source": {"name": source.name, "kind": source.kind, "adapter": adapter, "columns": source.columns,
                       "split": cfg.split if source.kind == "hub" else None, "subset": cfg.subset,
                       "revision": source.revision, "where": cfg.where, "map": cfg.map},
            "teacher": teacher.description,
            "sampling": teacher.params.to_dict() if cfg.teacher != "replay" else None,
            "funnel": self.funnel.stages,
            "rejected": len(self.funnel.rejected),
            "token_lengths": length_stats(lengths, length_kind, weights),
            "selection": {"select": cfg.select, "max_per_problem": cfg.max_per_problem},
            "warnings": self.warnings,
            "timings_s": {k: round(v, 3) for k, v in self.funnel.timings.items()},
            "config": cfg.to_dict(),
            **self.extra,
        }
        CurationStats.model_validate(stats).write(self.out / CurationStats.FILE)

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)


def _length(row: dict[str, Any]) -> int:
    if row.get("num_tokens") is not None:
        return row["num_tokens"]
    if row.get("completion_tokens") is not None:
        return row["completion_tokens"]
    return len(row.get("completion") or "")


def source_labels(value: Any, n: int) -> list[bool | None]:
    """A source's correctness column as one label per completion: a list (one per generation) or a
    single value for all; anything else is no label."""
    values = value if isinstance(value, (list, tuple)) else [value] * n
    return [bool(v) if isinstance(v, (bool, int)) else None for v in values]


def source_label_agreement(rows: list[dict[str, Any]], items: list[Item]) -> dict[str, int] | None:
    """How our verdicts compare with the source's own correctness labels (OpenR1's math-verify column)."""
    labels = {(it.problem["id"], i): lab for it in items for i, lab in enumerate(it.source_verdicts)}
    if not labels:
        return None
    counts = Counter()
    for row in rows:
        label = labels.get((row["id"], row["sample_idx"]))
        if label is None or row["verdict"] is None:
            continue
        ours = row["verdict"] == "correct"
        counts["both_correct" if ours and label else "both_not_correct" if not ours and not label
               else "only_ours_correct" if ours else "only_source_correct"] += 1
    return dict(sorted(counts.items()))


def length_stats(lengths: list[int], kind: str, weights: list[float] | None = None) -> dict[str, Any]:
    """Mean, percentiles and histogram of token lengths; ``weights`` (rows each length stands for)
    make them an estimate from a sample, with the counts in row units."""
    import numpy as np

    if not lengths:
        return {"measure": None, "count": 0}
    values = np.asarray(lengths, dtype=float)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(w[order]) / w.sum()

    def percentile(p: float) -> float:
        if weights is None:
            return float(np.percentile(values, p))
        return float(values[order][min(int(np.searchsorted(cumulative, p / 100)), len(values) - 1)])

    edges = np.histogram_bin_edges(values, bins=min(10, max(1, len(set(lengths)))))
    hist, edges = np.histogram(values, bins=edges, weights=w)
    return {
        "measure": kind, "count": int(round(w.sum())), "mean": round(float(np.average(values, weights=w)), 1),
        "min": int(values.min()), "max": int(values.max()), "total": int(round(float((values * w).sum()))),
        "percentiles": {f"p{p}": percentile(p) for p in PERCENTILES},
        "histogram": {"edges": [round(float(e), 1) for e in edges], "counts": [int(round(c)) for c in hist]},
    }


def write_parquet_dir(directory: Path, stem: str, rows: list[dict[str, Any]]) -> None:
    """Rows into ``directory/stem-XXXXX-of-YYYYY.parquet``, replacing the folder whole (atomic)."""
    chunks = [rows[i : i + PARQUET_ROWS] for i in range(0, len(rows), PARQUET_ROWS)] or [[]]
    with temp_path(directory) as tmp:
        tmp.mkdir(parents=True)
        for i, chunk in enumerate(chunks):
            if chunk:
                write_parquet(tmp / f"{stem}-{i:05d}-of-{len(chunks):05d}.parquet", chunk)


def push_to_hub(out: Path, repo_id: str) -> None:
    """Upload ``data/``, ``rejected/`` and the card as a dataset repository."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(out),
                          allow_patterns=["data/*", "rejected/*", "README.md", "stats.json"])
    except Exception as exc:  # network, auth, permissions
        raise UserError(f"push to the Hub as {repo_id} failed ({type(exc).__name__}: {exc}); the local "
                        f"dataset in {out} is complete — log in (huggingface-cli login) and retry", 1) from None
    log.info("pushed %s to https://huggingface.co/datasets/%s", out, repo_id)
