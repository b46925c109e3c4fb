"""Model cards are markdown: rendered safely (raw HTML in the text is escaped, unsafe links dropped)."""

from __future__ import annotations

from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # "js-default": CommonMark + tables/strikethrough with html disabled; validateLink refuses javascript:,
    # vbscript:, file: and data: (except images). breaks: cards written as plain lines keep their lines.
    return MarkdownIt("js-default", {"breaks": True})


def render_markdown(text: str | None) -> SafeString:
    if not text:
        return mark_safe("")
    return mark_safe(_renderer().render(text))
