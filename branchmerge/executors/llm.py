"""vLLM replicas across a Ray cluster through ``ray.data.llm`` (GPU machines only).

``--engine vllm --executor ray`` builds a ``vLLMEngineProcessorConfig`` from the vllm engine's
options: ``tensor_parallel_size`` GPUs per replica, ``replicas`` replicas (``--engine-option
replicas=N``, default: as many as the cluster's GPUs allow), ``batch_size`` samples per batch
(``--engine-option batch_size=64``). One row per (request, sample) carries its own sampling
parameters and seed (``seed + sample_idx``, as the local engines), and the rows are read back with
``iter_rows`` as batches finish, each completion handed to ``on_complete`` at once: a crash loses
at most the batches in flight, and ``--resume`` asks only for the missing samples.

ray.data.llm reports no finish reason; a completion that used its whole ``max_tokens`` budget is
recorded as ``length`` (truncated), any other as ``stop``.

This path needs vLLM and GPUs on the workers; it is not exercised by the CPU test suite.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from branchmerge.console import progress
from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError
from branchmerge.executors import Executor

PROCESSOR_KEYS = ("replicas", "batch_size")


def _processor_api() -> tuple[Any, Any]:
    try:
        from ray.data import llm
    except ImportError as exc:
        raise UserError(f"--engine vllm --executor ray needs Ray Data's LLM support: pip install "
                        f"'ray[data,llm]' vllm on every node ({exc})") from None
    build = getattr(llm, "build_processor", None) or llm.build_llm_processor
    return llm.vLLMEngineProcessorConfig, build


def stage_options(config_cls: Any, chat: bool) -> dict[str, Any]:
    """The chat-template / tokenize / detokenize switches under the names this Ray accepts.

    Ray renamed them (``apply_chat_template`` -> ``chat_template_stage``, ``tokenize`` ->
    ``tokenize_stage``, ``detokenize`` -> ``detokenize_stage``) and its config forbids unknown
    fields, so the names are read from the config class rather than from a version number.
    """
    fields = getattr(config_cls, "model_fields", None) or getattr(config_cls, "__fields__", {})
    if "chat_template_stage" in fields:
        return {"chat_template_stage": chat, "tokenize_stage": True, "detokenize_stage": True}
    return {"apply_chat_template": chat, "tokenize": True, "detokenize": True}


def sampling_of(params: SamplingParams, sample_idx: int) -> dict[str, Any]:
    """The per-row vLLM sampling parameters: one sample, seeded by its index as every engine does."""
    out: dict[str, Any] = {"n": 1, "temperature": params.temperature, "top_p": params.top_p,
                           "max_tokens": params.max_tokens, "seed": params.seed + sample_idx}
    if params.top_k > 0:
        out["top_k"] = params.top_k
    if params.stop:
        out["stop"] = list(params.stop)
    return out


class RayDataVLLM:
    name = "vllm"

    def __init__(self, executor: Executor, model: str, options: dict[str, Any]) -> None:
        self.executor = executor
        self.model = model
        options = dict(options)
        self.replicas = options.pop("replicas", None)
        self.batch_size = int(options.pop("batch_size", 64))
        options.pop("data_parallel_size", None)  # replicas are the data parallelism here
        self.engine_kwargs = options

    def info(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model, "engine_kwargs": self.engine_kwargs,
                "fan_out": {"executor": self.executor.name, "via": "ray.data.llm", "replicas": self._replicas(),
                            "batch_size": self.batch_size}}

    def _replicas(self) -> int:
        if self.replicas:
            return int(self.replicas)
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        return max(1, gpus // int(self.engine_kwargs.get("tensor_parallel_size", 1)))

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        import ray

        config_cls, build = _processor_api()
        work = pending(requests, params, skip)
        raw = any(r.prompt is not None for r, _ in work)
        if raw and any(r.prompt is None for r, _ in work):
            raise UserError("ray.data.llm takes either chat messages or raw prompts in one run, not both")
        rows = [{"rid": r.id, "sample_idx": s, "sampling_params": sampling_of(params, s),
                 **({"prompt": r.prompt} if raw else {"messages": r.messages})} for r, s in work]
        config = config_cls(model_source=self.model, engine_kwargs=self.engine_kwargs,
                            concurrency=self._replicas(), batch_size=self.batch_size,
                            **stage_options(config_cls, chat=not raw))
        processor = build(
            config,
            preprocess=lambda row: row,
            postprocess=lambda row: {"rid": row["rid"], "sample_idx": row["sample_idx"],
                                     "text": row.get("generated_text") or "",
                                     "prompt_tokens": row.get("num_input_tokens"),
                                     "completion_tokens": row.get("num_generated_tokens")},
        )
        results = Delivered(on_complete)
        with progress() as bar:
            task = bar.add_task(f"vllm {self.model} on ray.data.llm", total=len(work))
            for row in processor(ray.data.from_items(rows)).iter_rows():
                used = row["completion_tokens"]
                finish = "length" if used is not None and used >= params.max_tokens else "stop"
                results.add(Completion.build(row["rid"], int(row["sample_idx"]), row["text"], finish,
                                             row["prompt_tokens"], used, model=self.model))
                bar.advance(task)
        return results
