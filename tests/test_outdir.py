"""``claim`` under a launch: every process of ``branchmerge launch`` checks ``--out`` at the same
moment, and one of them marking a fresh folder must not make it look foreign to the others."""

from __future__ import annotations

import multiprocessing

from branchmerge.errors import UserError
from branchmerge.outdir import MARKER, claim, owner

FOLDERS = 300


def _claim_all(root: str, barrier, failures) -> None:
    barrier.wait()
    for index in range(FOLDERS):
        try:
            claim(f"{root}/run{index}", "training")
        except UserError as exc:
            failures.put(str(exc))


def test_processes_claiming_one_fresh_folder_together_all_get_it(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, failures = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_claim_all, args=(str(tmp_path), barrier, failures)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert not seen, f"{len(seen)} refusals, e.g. {seen[0]}"
    assert all(owner(tmp_path / f"run{i}") == "training" for i in range(FOLDERS))
    assert all(sorted(p.name for p in (tmp_path / f"run{i}").iterdir()) == [MARKER] for i in range(FOLDERS))


def test_a_crash_left_marker_temp_file_counts_as_an_empty_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / f"{MARKER}.k2j4.tmp").write_text("{")
    assert claim(folder, "training") is False
    assert owner(folder) == "training"
