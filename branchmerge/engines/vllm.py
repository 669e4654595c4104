"""vLLM offline batch generation for GPU machines (the optional ``[vllm]`` extra).

vLLM is imported only when this engine is asked for, and the model loads on the first request (so
``--executor ray`` can hand the same options to ``ray.data.llm`` replicas without loading it here).
A prompt that cannot fit its completion budget in ``max_model_len`` is refused up front instead of
being silently cut short.

Crash safety: the samples go to vLLM in chunks of ``store_every`` (``plan_chunks``), and every
completion of a chunk is handed to ``on_complete`` (stored) as soon as that chunk returns, so a
crash nine hours in loses at most one chunk, not the whole batch. vLLM batches continuously within a
chunk; a chunk of a few hundred samples keeps the GPU as busy as one big call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError

STORE_EVERY = 256  # samples per vLLM call; a crash loses at most this many


def plan_chunks(work: Sequence[Any], store_every: int) -> list[list[Any]]:
    """``work`` in order, cut into consecutive chunks of at most ``store_every`` items."""
    if store_every < 1:
        raise UserError(f"store_every must be >= 1, got {store_every}")
    return [list(work[i : i + store_every]) for i in range(0, len(work), store_every)]


def run_in_chunks(work: Sequence[Any], store_every: int, generate: Any, deliver: Any) -> int:
    """``generate(chunk) -> outputs`` chunk by chunk; ``deliver(item, output)`` for every output of a
    chunk before the next chunk starts. Returns how many were delivered. If ``generate`` raises, every
    earlier chunk is already delivered: the crash costs that one chunk."""
    done = 0
    for chunk in plan_chunks(work, store_every):
        outputs = list(generate(chunk))
        if len(outputs) != len(chunk):
            raise RuntimeError(f"generation returned {len(outputs)} outputs for a chunk of {len(chunk)}")
        for item, output in zip(chunk, outputs):
            deliver(item, output)
            done += 1
    return done


def finish_of(reason: str | None) -> str:
    """vLLM's finish reason mapped onto ours: ``length`` stays, everything else (stop, eos) is ``stop``."""
    return "length" if reason == "length" else "stop"


class VLLMEngine:
    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        max_model_len: int | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        trust_remote_code: bool = False,
        store_every: int = STORE_EVERY,
        **llm_options: Any,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise UserError(
                "the vllm engine needs vLLM: pip install 'branchmerge[vllm]' (on a machine with a GPU)"
            ) from None
        if store_every < 1:
            raise UserError(f"store_every must be >= 1, got {store_every}")
        self.model = model
        self._vllm = vllm
        self.store_every = store_every
        # the vllm.LLM arguments except the model: what a ray.data.llm replica is built with too
        options: dict[str, Any] = dict(
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
            **llm_options,
        )
        if data_parallel_size > 1:
            options["data_parallel_size"] = data_parallel_size
        if max_model_len:
            options["max_model_len"] = max_model_len
        self.options = options
        self._llm: Any = None
        self._tokenizer: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            self._llm = self._vllm.LLM(model=self.model, **self.options)
        return self._llm

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer; read without loading the model when the model is not loaded yet (a Ray
        driver renders prompts with it while the replicas hold the model)."""
        if self._llm is not None:
            return self._llm.get_tokenizer()
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model, trust_remote_code=bool(self.options.get("trust_remote_code")))
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        return self.llm.llm_engine.model_config.max_model_len

    def info(self) -> dict[str, Any]:
        # max_model_len is vLLM's resolved value once the model is loaded, else what was asked for
        max_len = self.max_model_len if self._llm is not None else self.options.get("max_model_len")
        return {"engine": self.name, "model": self.model, "vllm": self._vllm.__version__,
                "max_model_len": max_len, "store_every": self.store_every}

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        prompts = {}
        for r in requests:
            prompts[r.id] = r.prompt if r.prompt is not None else self.tokenizer.apply_chat_template(
                r.messages, tokenize=False, add_generation_prompt=True
            )
        work = [(r.id, s) for r, s in pending(requests, params, skip)]
        token_ids = {rid: self.tokenizer(prompts[rid], add_special_tokens=False)["input_ids"] for rid in prompts}
        for rid, ids in token_ids.items():
            if len(ids) + params.max_tokens > self.max_model_len:
                raise UserError(
                    f"request {rid!r}: prompt ({len(ids)} tokens) + max_tokens ({params.max_tokens}) exceeds "
                    f"max_model_len {self.max_model_len}; raise it with --engine-option max_model_len=N, or lower --max-tokens"
                )
        # One vLLM request per sample with its own seed, so a resumed run reproduces the missing samples.
        sampling = [
            self._vllm.SamplingParams(
                n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                max_tokens=params.max_tokens, seed=params.seed + s, stop=params.stop or None,
            )
            for _, s in work
        ]
        results = Delivered(on_complete)

        def generate_chunk(chunk: list[tuple[tuple[str, int], Any]]) -> list[Any]:
            return self.llm.generate([{"prompt_token_ids": token_ids[rid]} for (rid, _), _ in chunk],
                                     [p for _, p in chunk], use_tqdm=True)

        def deliver(item: tuple[tuple[str, int], Any], out: Any) -> None:
            (rid, s), _ = item
            choice = out.outputs[0]
            results.add(Completion.build(rid, s, choice.text, finish_of(choice.finish_reason),
                                         len(out.prompt_token_ids), len(choice.token_ids), model=self.model))

        run_in_chunks(list(zip(work, sampling)), self.store_every, generate_chunk, deliver)
        return results
