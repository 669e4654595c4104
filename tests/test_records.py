"""Row schemas and the append-only run store, including a real kill -9 of a writer process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from branchmerge.errors import UserError
from branchmerge.records import RecordError, RunStore, read_jsonl, read_parquet_rows, validate

PROBLEM = {"id": "p1", "domain": "math", "source": "t", "prompt": "1+1?", "reference": "2", "meta": {}}


def generation(i: int, sample: int = 0, size: int = 10) -> dict:
    return {**PROBLEM, "id": f"p{i}", "model": "m", "sample_idx": sample, "completion": "x" * size,
            "verdict": "correct", "verdict_detail": {"rule": "test", "extracted": str(i)}}


def test_validate_fills_defaults_and_names_the_problem():
    row = validate({"id": "a", "domain": "code", "prompt": "p"}, "problem")
    assert row["meta"] == {} and row["reference"] is None
    with pytest.raises(ValueError, match="domain 'poetry'"):
        validate({**PROBLEM, "domain": "poetry"})
    with pytest.raises(ValueError, match="missing field.*completion"):
        validate({**PROBLEM, "model": "m", "sample_idx": 0}, "generation")
    with pytest.raises(ValueError, match="sample_idx.*int"):
        validate({**generation(1), "sample_idx": "0"}, "generation")
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        validate({**generation(1), "verdict": "maybe"}, "generation")


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(PROBLEM) + "\n\n" + '{"id": "p2", "domain": "math"}\n')
    with pytest.raises(RecordError, match=r"rows\.jsonl:3: missing field\(s\) prompt"):
        list(read_jsonl(path, "problem"))
    path.write_text(json.dumps(PROBLEM) + "\n{not json\n")
    with pytest.raises(RecordError, match=r"rows\.jsonl:2:"):
        list(read_jsonl(path, "problem"))
    with pytest.raises(UserError, match="no such file"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_store_skips_written_keys_and_refuses_to_mix_runs(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open() == set()
    assert store.append(generation(1)) is True
    assert store.append(generation(1)) is False
    store.close()
    with pytest.raises(UserError, match="pass --resume"):
        RunStore(tmp_path / "run").open()
    store = RunStore(tmp_path / "run")
    assert store.open(resume=True) == {("p1", 0)}
    store.append(generation(2))
    store.close()
    assert [r["id"] for r in store.rows()] == ["p1", "p2"]
    with pytest.raises(RecordError, match="verdict"):
        store.open(resume=True)
        store.append({**generation(3), "verdict": "bogus"})
    store.close()


def test_torn_tail_is_ignored_and_cut_on_resume(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open()
    store.append(generation(1))
    store.close()
    shard = store.shards()[0]
    with shard.open("ab") as fh:
        fh.write(json.dumps(generation(2)).encode()[:25])  # a write cut short by a crash
    assert [r["id"] for r in store.rows()] == ["p1"]
    assert store.open(resume=True) == {("p1", 0)}
    store.append(generation(2))
    store.close()
    assert [r["id"] for r in store.rows()] == ["p1", "p2"]
    assert all(json.loads(line) for s in store.shards() for line in s.read_text().splitlines())


def test_parquet_export_loads_in_pandas_and_datasets(tmp_path):
    import pandas as pd
    from datasets import load_dataset

    store = RunStore(tmp_path / "run")
    store.open()
    for i in range(5):
        store.append({**generation(i), "reference": {"inputs": ["1"], "outputs": ["2"]} if i % 2 else str(i)})
    store.close()
    path = store.export_parquet(tmp_path / "out" / "data.parquet")
    frame = pd.read_parquet(path)
    assert list(frame["id"]) == [f"p{i}" for i in range(5)]
    ds = load_dataset("parquet", data_files=str(path), split="train")
    assert ds.num_rows == 5 and json.loads(ds[1]["reference"]) == {"inputs": ["1"], "outputs": ["2"]}
    rows = read_parquet_rows(path)
    assert rows[1]["reference"] == {"inputs": ["1"], "outputs": ["2"]} and rows[2]["verdict_detail"]["extracted"] == "2"
    assert not list(path.parent.glob(".*tmp*"))


WRITER = """
import sys, time
from branchmerge.records import RunStore
store = RunStore(sys.argv[1])
done = store.open(resume=True)
for i in range(int(sys.argv[2])):
    for s in range(2):
        if (f"p{i}", s) in done:
            continue
        row = {"id": f"p{i}", "domain": "math", "prompt": "q", "model": "m", "sample_idx": s,
               "completion": "y" * (1 << 16) * (1 + i % 3)}
        time.sleep(0.01)
        store.append(row)
store.close()
"""


def test_kill_9_at_random_moments_then_resume_loses_and_duplicates_nothing(tmp_path):
    total = 150
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(0)
    kills = 0
    for _ in range(40):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(total)],
                                env={**os.environ, "PYTHONPATH": os.getcwd()})
        time.sleep(rng.uniform(0.2, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break
    assert kills >= 2, "the writer finished before it could be killed; the test proves nothing"
    assert proc.returncode == 0
    store = RunStore(tmp_path / "run")
    rows = list(store.rows())
    keys = [(r["id"], r["sample_idx"]) for r in rows]
    assert len(keys) == len(set(keys)) == total * 2
    raw_keys = []
    for shard in store.shards():
        for line in shard.read_bytes().split(b"\n"):
            if line:
                row = json.loads(line)  # every stored line is a complete, valid row
                raw_keys.append((row["id"], row["sample_idx"]))
                assert row["completion"] == "y" * (1 << 16) * (1 + int(row["id"][1:]) % 3)
    assert len(raw_keys) == len(set(raw_keys))  # no key was ever written twice
