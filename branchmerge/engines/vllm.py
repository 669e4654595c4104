"""vLLM offline batch generation for GPU machines (the optional ``[vllm]`` extra).

vLLM is imported only when this engine is asked for. A prompt that cannot fit its completion
budget in ``max_model_len`` is refused up front instead of being silently cut short.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError


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
        **llm_options: Any,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise UserError(
                "the vllm engine needs vLLM: pip install 'branchmerge[vllm]' (on a machine with a GPU)"
            ) from None
        self.model = model
        self._vllm = vllm
        options: dict[str, Any] = dict(
            model=model,
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
        self.llm = vllm.LLM(**options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def info(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model, "vllm": self._vllm.__version__,
                "max_model_len": self.max_model_len}

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
                    f"max_model_len {self.max_model_len}; raise --max-model-len or lower --max-tokens"
                )
        # One vLLM request per sample with its own seed, so a resumed run reproduces the missing samples.
        sampling = [
            self._vllm.SamplingParams(
                n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                max_tokens=params.max_tokens, seed=params.seed + s, stop=params.stop or None,
            )
            for _, s in work
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": token_ids[rid]} for rid, _ in work], sampling, use_tqdm=True
        )
        results = Delivered(on_complete)
        for (rid, s), out in zip(work, outputs, strict=True):
            choice = out.outputs[0]
            finish = "length" if choice.finish_reason == "length" else "stop"
            results.add(Completion.build(
                rid, s, choice.text, finish, len(out.prompt_token_ids), len(choice.token_ids), model=self.model
            ))
        return results
