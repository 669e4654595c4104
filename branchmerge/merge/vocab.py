"""Vocabulary alignment for ``tokenizer_source``: embedding rows re-indexed by token text.

The output vocabulary is the tokenizer model's (the base, or the model named). For every other
input whose tokenizer or embedding row count differs, each output row takes that model's row
for the same token string; tokens the model lacks take the tokenizer model's row (mergekit's rule
when the base has the token). The output keeps the tokenizer model's row count (mergekit instead
trims to the tokenizer length).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from branchmerge.errors import UserError

if TYPE_CHECKING:
    from branchmerge.merge.config import MergeConfig
    from branchmerge.merge.safetensors_io import SafetensorsModel

VOCAB_NAME_PARTS = ("embed_tokens", "lm_head", "wte", "embed_out", "word_embeddings")


@dataclass
class VocabMap:
    """Row mapping of one input's vocabulary tensors onto the output vocabulary."""

    tensors: set[str]
    src: torch.Tensor  # int64 [rows]: the input's row for each output row, -1 = take fill row
    rows: int
    fill_from: int  # index of the tokenizer model among the inputs

    def apply(self, t: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        out = fill.clone()
        valid = self.src >= 0
        out[valid] = t[self.src[valid]].to(out.dtype)
        return out


def is_vocab_tensor(name: str) -> bool:
    return any(part in name for part in VOCAB_NAME_PARTS)


def token_ids(model_dir: Path) -> dict[str, int]:
    """token text -> id from tokenizer.json (model vocab plus added tokens)."""
    path = model_dir / "tokenizer.json"
    if not path.exists():
        raise UserError(f"{model_dir}: tokenizer.json is missing; tokenizer_source needs fast tokenizers to align vocabularies")
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab: Any = data.get("model", {}).get("vocab", {})
    ids = {tok: i for i, (tok, _score) in enumerate(vocab)} if isinstance(vocab, list) else dict(vocab)
    for added in data.get("added_tokens", []):
        ids[added["content"]] = added["id"]
    return ids


def vocab_maps(cfg: MergeConfig, models: list[SafetensorsModel], configs: list[dict[str, Any]], ref_i: int) -> dict[int, VocabMap]:
    """Maps for the inputs that need re-indexing; empty without ``tokenizer_source``."""
    if cfg.tokenizer_source is None:
        return {}
    tok_i = cfg.models.index(cfg.tokenizer_model)
    names = [n for n in sorted(models[tok_i].tensors) if is_vocab_tensor(n) and len(models[tok_i].tensors[n].shape) >= 1]
    if not names:
        return {}
    rows = models[tok_i].tensors[names[0]].shape[0]
    target = token_ids(cfg.models[tok_i].path)
    target_by_id = {i: tok for tok, i in target.items()}
    maps: dict[int, VocabMap] = {}
    for i, m in enumerate(cfg.models):
        if i == tok_i:
            continue
        m_rows = {models[i].tensors[n].shape[0] for n in names}
        if len(m_rows) != 1:
            raise UserError(f"{m.ref}: vocabulary tensors {names} disagree on their row count")
        m_row_count = m_rows.pop()
        ids = token_ids(m.path)
        if ids == target and m_row_count == rows:
            continue
        src = torch.full((rows,), -1, dtype=torch.int64)
        for out_id in range(rows):
            tok = target_by_id.get(out_id)
            j = ids.get(tok) if tok is not None else out_id
            if j is not None and j < m_row_count:
                src[out_id] = j
        maps[i] = VocabMap(set(names), src, rows, tok_i)
    return maps
