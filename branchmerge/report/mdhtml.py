"""Stage cards (README.md) rendered as HTML inside the report, with markdown-it-py.

Cards are written by our own stages but carry user-controlled text (model names, dataset ids), so
raw HTML is off (it is escaped, never passed through), links keep markdown-it's own scheme check
(no ``javascript:``) and open with ``rel="noopener noreferrer"``, tables are on. The YAML front
matter is shown as a block of text, and headings sit two levels below the report's own.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

from markupsafe import Markup


@lru_cache(maxsize=1)
def _renderer() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def heading(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"
        return renderer.renderToken(tokens, idx, options, env)

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    def table_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return '<div class="scroll">' + renderer.renderToken(tokens, idx, options, env)

    def table_close(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return renderer.renderToken(tokens, idx, options, env) + "</div>"

    for rule, fn in (("heading_open", heading), ("heading_close", heading), ("link_open", link_open),
                     ("table_open", table_open), ("table_close", table_close)):
        md.add_render_rule(rule, fn)
    return md


def markdown_to_html(text: str) -> Markup:
    text = text.replace("\r\n", "\n")
    front = ""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            front = f'<pre class="front-matter">{html.escape(chr(10).join(lines[1:end]))}</pre>\n'
            text = "\n".join(lines[end + 1:])
    return Markup(front + _renderer().render(text))
