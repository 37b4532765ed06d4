"""Text hygiene of LLM-written labels: instruction-like text (prompt injection), markup and URLs have no place in
a motion caption or a question. One regular expression (RE2 and Python `re` alike), used by the SQL checks
`captions_text_hygiene` / `qa_text_hygiene` (sql/checks, the same pattern spelled out; a unit test holds them
equal) and by the exports, which leave flagged rows out."""

from __future__ import annotations

import re

# (?i) case-insensitive; three families: instructions to a model, markup (HTML / XML tags, markdown links), URLs
PATTERN = (
    r"(?i)(\b(ignore|disregard|forget|override)\b[^.]{0,40}\b(instructions?|prompts?|rules)\b"
    r"|\bsystem prompt\b|\byou are now\b|\bnew instructions?\b"
    r"|</?[a-z][a-z0-9-]*(\s[^>]*)?/?>|\[[^\]]*\]\([^)]*\)"
    r"|\bhttps?://|\bwww\.[a-z0-9-]+\.[a-z]|\bjavascript:)"
)
_RE = re.compile(PATTERN)

CAPTION_TEXT = "concat_ws(' ', caption, aspects)"
QUESTION_TEXT = "concat_ws(' ', question, option_a, option_b, option_c, option_d, answer_text)"


def flagged(text: str | None) -> bool:
    """Whether a text holds instruction-like text, markup or a URL."""
    return text is not None and _RE.search(text) is not None


def sql_filter(text_sql: str) -> str:
    """A DuckDB condition that is true for rows whose text is clean."""
    pattern = PATTERN.replace("'", "''")
    return f"NOT coalesce(regexp_matches({text_sql}, '{pattern}'), false)"
