"""From a problem row to the chat the model sees, and the think-prefix check.

Templates are data (branchmerge/benchmarks/registry.yaml). DeepSeek-R1's protocol: no system prompt, everything in
the user turn. R1-Distill chat templates since February 2025 open the assistant turn with
``<think>\\n`` themselves; older ones do not, and then the model may skip thinking. We detect
which kind the tokenizer has and record it; ``--force-think`` renders the chat ourselves and
appends the prefix when the template lacks it (the request then goes out as a raw prompt).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from branchmerge.errors import UserError
from branchmerge.reasoning import THINK_OPEN

_PLACEHOLDER = re.compile(r"\{(prompt|A|B|C|D|starter_code|code_format)\}")


def fill(text: str, values: dict[str, str]) -> str:
    """Replace the known ``{name}`` placeholders only; LaTeX braces stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _values(template: dict[str, Any], row: dict[str, Any], shown: Any = None) -> dict[str, str]:
    """The placeholder values for ``row``; ``shown`` is the (shuffled) reference for multiple choice."""
    values: dict[str, str] = {"prompt": row["prompt"]}
    reference = shown if shown is not None else row.get("reference")
    if isinstance(reference, dict) and isinstance(reference.get("options"), dict):
        values.update({k: str(v) for k, v in reference["options"].items()})
    formats = template.get("code_format")
    if formats:
        starter = (row.get("meta") or {}).get("starter_code") or ""
        values["starter_code"] = starter
        values["code_format"] = fill(formats["starter" if starter.strip() else "stdin"], values)
    return values


def user_message(template: dict[str, Any], row: dict[str, Any], shown: Any = None) -> str:
    """The user turn for ``row``; ``shown`` is the (shuffled) reference for multiple choice."""
    return fill(template["user"], _values(template, row, shown))


def raw_prompt(template: dict[str, Any], row: dict[str, Any], shown: Any = None) -> str | None:
    """The whole prompt text of a ``raw`` template (sent without any chat template), else None."""
    if template.get("raw") is None:
        return None
    return fill(template["raw"], _values(template, row, shown))


def messages_for(template: dict[str, Any], row: dict[str, Any], shown: Any = None) -> list[dict[str, str]]:
    chat = []
    if template.get("system"):
        chat.append({"role": "system", "content": fill(template["system"], {"prompt": row["prompt"]})})
    chat.append({"role": "user", "content": user_message(template, row, shown)})
    return chat


def prompt_hash(text_or_messages: str | list[dict[str, str]]) -> str:
    """sha256[:16] of the exact rendered prompt (or of the chat, when no tokenizer renders it)."""
    if not isinstance(text_or_messages, str):
        text_or_messages = json.dumps(text_or_messages, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text_or_messages.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ThinkPrefix:
    """What the chat template does at the start of the assistant turn."""

    template_opens_think: bool | None  # None: no tokenizer/template to inspect (e.g. a remote server)
    forced: bool  # True when we append "<think>\n" ourselves

    def to_dict(self) -> dict[str, Any]:
        return {"template_opens_think": self.template_opens_think, "forced": self.forced}


def template_opens_think(tokenizer: Any) -> bool | None:
    """True when the rendered generation prompt already ends with ``<think>``."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    probe = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True
    )
    return probe.rstrip().endswith(THINK_OPEN)


class Renderer:
    """Renders chats with the model's tokenizer (when there is one) to hash and, if asked, force think."""

    def __init__(self, tokenizer: Any = None, force_think: bool = False) -> None:
        self.tokenizer = tokenizer
        opens = template_opens_think(tokenizer)
        if force_think and tokenizer is None:
            raise UserError(
                "--force-think needs the model's tokenizer to render the chat; it is not available for "
                "this engine/model (for a served model, check that the server's template opens <think>)"
            )
        if force_think and not getattr(tokenizer, "chat_template", None):
            raise UserError("--force-think: the tokenizer has no chat template to extend")
        self.think = ThinkPrefix(opens, bool(force_think and opens is False))

    def render(self, chat: list[dict[str, str]]) -> str | None:
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            return None
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return text + f"{THINK_OPEN}\n" if self.think.forced else text

    def request_fields(self, chat: list[dict[str, str]] | str) -> tuple[dict[str, Any], str]:
        """Request kwargs (messages, or a raw prompt when forcing think or given one) and the prompt hash."""
        if isinstance(chat, str):  # a raw template's text: sent exactly as it is
            return {"prompt": chat}, prompt_hash(chat)
        text = self.render(chat)
        if self.think.forced and text is not None:
            return {"prompt": text}, prompt_hash(text)
        return {"messages": chat}, prompt_hash(text if text is not None else chat)
