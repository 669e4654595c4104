"""A small, safe markdown-to-HTML converter for the stage cards (README.md) shown in the report.

Cards are written by our own stages but carry user-controlled text (model names, dataset ids), so
every line is HTML-escaped first and only then given the few tags this module itself emits:
headings, paragraphs, lists, pipe tables, fenced code, YAML front matter, inline code, bold,
italics and http(s) links. Anything else stays visible as plain text.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_INLINE = [
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)"), r'<a href="\2" rel="noopener noreferrer">\1</a>'),
]
_TABLE_RULE = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?$")
_LIST = re.compile(r"^\s*([-*+]|\d+[.)])\s+(.*)$")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    # Keep code spans literal: substitute them first and shield their content from later rules.
    parts = re.split(r"(`[^`]+`)", out)
    for i, part in enumerate(parts):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            parts[i] = f"<code>{part[1:-1]}</code>"
        else:
            for pattern, repl in _INLINE:
                part = pattern.sub(repl, part)
            parts[i] = part
    return "".join(parts)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str) -> Markup:
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i = 0
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            out.append(f'<pre class="front-matter">{html.escape(chr(10).join(lines[1:end]))}</pre>')
            i = end + 1
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # cards sit below the report's own headings
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif stripped.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip()):
            flush()
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(stripped))
            body = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                       f"<tbody>{''.join(body)}</tbody></table></div>")
            continue
        elif _LIST.match(line):
            flush()
            ordered = _LIST.match(line).group(1)[0].isdigit()  # type: ignore[union-attr]
            items = []
            while i < len(lines) and _LIST.match(lines[i]):
                items.append(f"<li>{_inline(_LIST.match(lines[i]).group(2))}</li>")  # type: ignore[union-attr]
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>{''.join(items)}</{tag}>")
            continue
        elif not stripped:
            flush()
        else:
            paragraph.append(stripped)
        i += 1
    flush()
    return Markup("\n".join(out))
