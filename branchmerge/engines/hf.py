"""transformers ``generate`` back-end: the CPU default and the engine of the tests.

Prompts are batched with left padding; every (request, sample) pair is one row of a batch, so a
resumed run only regenerates the missing samples. Token counts come from the token ids
themselves, and ``finish_reason`` is "length" exactly when no end-of-sequence token (or stop
string) appeared within ``max_tokens``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from branchmerge.console import progress
from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError


class HFEngine:
    name = "hf"

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.batch_size = batch_size
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            self.lm = AutoModelForCausalLM.from_pretrained(
                model, dtype=torch_dtype, trust_remote_code=trust_remote_code
            ).to(device)
        except OSError as exc:
            raise UserError(f"cannot load model {model!r} with transformers: {exc}") from None
        self.lm.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos_ids = _eos_ids(self.lm, self.tokenizer)

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "engine": self.name,
            "model": self.model,
            "device": self.device,
            "dtype": str(self.lm.dtype),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    def render(self, request: Request) -> str:
        """The exact text the model is conditioned on."""
        if request.prompt is not None:
            return request.prompt
        if not self.tokenizer.chat_template:
            raise UserError(f"{self.model}: tokenizer has no chat template; pass raw prompts instead")
        return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        import torch

        texts = {r.id: self.render(r) for r in requests}
        work = [(r.id, s) for r, s in pending(requests, params, skip)]
        results = Delivered(on_complete)
        with progress() as bar:
            task = bar.add_task(f"hf generate ({Path(self.model).name})", total=len(work))
            for start in range(0, len(work), self.batch_size):
                batch = work[start : start + self.batch_size]
                torch.manual_seed(_batch_seed(params.seed, batch))
                for completion in self._generate_batch(batch, texts, params):
                    results.add(completion)
                bar.advance(task, len(batch))
        return results

    def _generate_batch(
        self, batch: list[tuple[str, int]], texts: dict[str, str], params: SamplingParams
    ) -> list[Completion]:
        import torch

        enc = self.tokenizer(
            [texts[rid] for rid, _ in batch], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sampling,
            "eos_token_id": self._eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=max(params.top_k, 0))
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        completions = []
        for row, (rid, sample_idx) in enumerate(batch):
            ids, n_generated, finish = self._cut(out[row, prompt_len:].tolist(), params)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            text, stopped = _cut_stop_strings(text, params.stop)
            completions.append(
                Completion.build(
                    rid, sample_idx, text, "stop" if stopped else finish, int(prompt_tokens[row]), n_generated,
                    model=self.model,
                )
            )
        return completions

    def _cut(self, ids: list[int], params: SamplingParams) -> tuple[list[int], int, str]:
        """Text ids before the first EOS, the number of generated tokens (the EOS counts, as in
        vLLM and the OpenAI usage field; padding after it does not) and the finish reason."""
        for i, tok in enumerate(ids):
            if tok in self._eos_ids:
                return ids[:i], i + 1, "stop"
        return ids, len(ids), "length" if len(ids) >= params.max_tokens else "stop"


def _eos_ids(lm: Any, tokenizer: Any) -> list[int]:
    ids = lm.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _batch_seed(seed: int, batch: list[tuple[str, int]]) -> int:
    """A seed that depends on the run seed and on which samples the batch holds (not on order of runs)."""
    digest = hashlib.sha256(repr((seed, batch)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _cut_stop_strings(text: str, stop: list[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
