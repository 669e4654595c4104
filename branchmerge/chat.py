"""How a chat becomes the text and ids a branch is trained on: the template, and the framing of a turn.

Training (``train.data``) and curation's length filter (``curate.filters``) both use this, so a
curated example is measured exactly as it will be trained: the inference prompt, the assistant
content minus the generation prompt's pre-fill, and the turn end up to its stop token. Rendering
the whole conversation instead would be wrong for R1-Distill templates, which drop the reasoning
of assistant turns.

Which chat template a branch is trained with: the base model's own, or a named one.

TinyR1's experts were trained by 360-LLaMA-Factory with ``--template qwen``: ChatML with the default
system prompt "You are a helpful assistant.", assistant turns ended by ``<|im_end|>`` (its
``replace_eos``), not the R1-Distill template the base model ships with. ``qwen`` renders exactly
that; ``chatml`` is the same framing without a default system prompt; ``model`` keeps the base
model's template; a ``.jinja`` path reads one. The chosen template is saved with the trained
model so that inference renders prompts the way training did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError

IM_END = "<|im_end|>"
SENTINEL = "\ue000branchmerge-sentinel\ue000"
IGNORE = -100  # label of the ids that carry no loss
_CHATML_TURNS = (
    "{%- for message in loop_messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# LLaMA-Factory's `qwen` template (format_system / format_user / eos <|im_end|> / separator "\n").
QWEN = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = 'You are a helpful assistant.' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{{ '<|im_start|>system\\n' + system + '<|im_end|>\\n' }}" + _CHATML_TURNS
)
CHATML = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}"
    + _CHATML_TURNS
)
NAMED = {"qwen": QWEN, "chatml": CHATML}
CHOICES = ("model", *NAMED, "PATH.jinja")


def template_file(choice: str) -> Path | None:
    """The ``.jinja`` file ``choice`` names (None for model, qwen, chatml); a bad choice is a UserError,
    so a command can refuse it before any work."""
    if choice == "model" or choice in NAMED:
        return None
    path = Path(choice).expanduser()
    if path.suffix != ".jinja":
        raise UserError(f"chat_template {choice!r}: expected one of model, qwen, chatml, or a .jinja file")
    if not path.is_file():
        raise UserError(f"chat_template {choice}: no such file")
    return path


def use_template(tokenizer: Any, choice: str) -> list[int]:
    """Install the template ``choice`` on ``tokenizer``; return the extra ids that end an assistant turn."""
    path = template_file(choice)
    if path is not None:
        tokenizer.chat_template = path.read_text("utf-8")
    elif choice in NAMED:
        tokenizer.chat_template = NAMED[choice]
        return [_single_token(tokenizer, IM_END, choice)]
    return []


def _single_token(tokenizer: Any, text: str, choice: str) -> int:
    """The id of ``text`` when the tokenizer encodes it as one token (a ChatML tokenizer does)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        name = getattr(tokenizer, "name_or_path", "the base model")
        raise UserError(
            f"chat_template {choice}: the tokenizer of {name!r} splits {text} into {len(ids)} tokens, so a "
            "trained branch could not stop on it; use chat_template=model, or a tokenizer with ChatML tokens"
        )
    return ids[0]


@dataclass
class ChatFormat:
    """How one tokenizer's chat template frames an assistant turn, probed by rendering it."""

    tokenizer: Any
    stop_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, extra_stop_ids: list[int] | tuple[int, ...] = ()) -> ChatFormat:
        if not getattr(tokenizer, "chat_template", None):
            raise UserError(
                f"the tokenizer of {getattr(tokenizer, 'name_or_path', 'the base model')!r} has no chat "
                "template; add one to tokenizer_config.json (or chat_template.jinja) before training"
            )
        stops = {i for i in extra_stop_ids if i is not None}
        if tokenizer.eos_token_id is not None:
            stops.add(tokenizer.eos_token_id)
        return cls(tokenizer, frozenset(stops))

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def frame(self, context: list[dict[str, str]]) -> tuple[str, str, str]:
        """(inference prompt, the part of it that pre-fills the assistant turn, end-of-turn text)."""
        prompt = self.render(context, True)
        probe = self.render([*context, {"role": "assistant", "content": SENTINEL}], False)
        at = probe.find(SENTINEL)
        if at < 0:
            raise UserError("the chat template does not render the assistant's content; cannot train on it")
        head, end_of_turn = probe[:at], probe[at + len(SENTINEL) :]
        prefill = prompt[len(head) :] if prompt.startswith(head) else ""
        return prompt, prefill, end_of_turn

    def split(self, messages: list[dict[str, str]]) -> tuple[str, str, str] | None:
        """(prompt, target, end-of-turn) texts; None when the content lacks the template's prefill."""
        content = messages[-1]["content"]
        prompt, prefill, end_of_turn = self.frame(messages[:-1])
        if prefill:
            if content.startswith(prefill):
                content = content[len(prefill) :]
            elif prefill.strip() and content.lstrip().startswith(prefill.strip()):
                content = content.lstrip()[len(prefill.strip()) :].lstrip(" \t\n")
            else:
                return None
        return prompt, content, end_of_turn

    def encode(self, messages: list[dict[str, str]]) -> dict[str, list[int]] | None:
        """``input_ids`` and ``labels`` (IGNORE outside the target); None as for ``split``."""
        parts = self.split(messages)
        if parts is None:
            return None
        prompt, content, end_of_turn = parts
        prompt_ids = self._ids(prompt)
        target = self._ids(content) + self.tail_ids(end_of_turn)
        return {"input_ids": prompt_ids + target, "labels": [IGNORE] * len(prompt_ids) + target}

    def tail_ids(self, end_of_turn: str) -> list[int]:
        """The ids that close a target: the turn end up to its stop token (or the turn end and eos)."""
        turn_end = self._ids(end_of_turn)
        stop = next((i for i, t in enumerate(turn_end) if t in self.stop_ids), None)
        if stop is not None:
            return turn_end[: stop + 1]
        if self.tokenizer.eos_token_id is None:  # the template's turn end holds no stop token
            raise UserError(
                "the chat template ends assistant turns without a stop token and the tokenizer has no "
                "eos_token: the branch could never learn to stop; set eos_token in the tokenizer config"
            )
        return [*turn_end, self.tokenizer.eos_token_id]  # teach the model to stop anyway

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
