"""Which chat template a branch is trained with: the base model's own, or a named one.

TinyR1's experts were trained by 360-LLaMA-Factory with ``--template qwen``: ChatML with the default
system prompt "You are a helpful assistant.", assistant turns ended by ``<|im_end|>`` (its
``replace_eos``), not the R1-Distill template the base model ships with. ``qwen`` renders exactly
that; ``chatml`` is the same framing without a default system prompt; ``model`` keeps the base
model's template; a ``.jinja`` path reads one. The chosen template is saved with the trained
model so that inference renders prompts the way training did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from branchmerge.errors import UserError

IM_END = "<|im_end|>"
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


def use_template(tokenizer: Any, choice: str) -> list[int]:
    """Install the template ``choice`` on ``tokenizer``; return the extra ids that end an assistant turn."""
    if choice == "model":
        return []
    if choice in NAMED:
        tokenizer.chat_template = NAMED[choice]
        return [_single_token(tokenizer, IM_END, choice)]
    path = Path(choice).expanduser()
    if path.suffix != ".jinja":
        raise UserError(f"chat_template {choice!r}: expected one of model, qwen, chatml, or a .jinja file")
    if not path.is_file():
        raise UserError(f"chat_template {choice}: no such file")
    tokenizer.chat_template = path.read_text("utf-8")
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
