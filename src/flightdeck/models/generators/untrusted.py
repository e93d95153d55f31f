"""Documents are data: text in them that reads like instructions to a model is flagged, and the fence around a
source in the prompt cannot be broken from inside.

:func:`instruction_like` names why a text looks like a prompt injection ("asks to ignore instructions", ...). The
patterns are phrases, not words: "ignore" alone is everyday prose ("ignore errors"), "ignore the previous
instructions" is not, so ordinary documentation raises no flag. A flag does not drop the source: the answer carries
it (``Answer.flags``) for a person, a monitor or an evaluation to look at.

:func:`fence_text` and :func:`fence_attribute` neutralise what could end the data block a document sits in: its
``</source>`` (and ``< / SOURCE >``), a new ``<source ...>``, a chat template's control tokens (``<|im_start|>``,
``<start_of_turn>``: llama.cpp parses them as tokens inside a prompt), and, in a title, quotes, angle brackets and
line breaks.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["instruction_like", "flag_sources", "fence_text", "fence_attribute", "REASONS"]

_I = re.IGNORECASE | re.MULTILINE
_TARGET = r"(?:instructions?|prompts?|rules|directions?|guidelines|directives?|guardrails|orders)"
_QUALIFIER = (r"(?:all|any|the|of|your|my|these|those|previous|previously|prior|above|earlier|preceding|foregoing|"
              r"system|original|initial|given|existing|current|safety)")

#: Each reason and the patterns that raise it.
REASONS: dict[str, tuple[re.Pattern[str], ...]] = {
    "asks to ignore instructions": (
        re.compile(rf"\b(?:ignore|disregard|forget|override|bypass)\s+(?:{_QUALIFIER}\s+){{1,4}}"
                   rf"{_TARGET}\b", _I),
        re.compile(r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:the\s+)?(?:above|foregoing|"
                   r"everything\s+(?:above|before|you\s+were\s+told))\b", _I),
        re.compile(rf"\bdo\s+not\s+(?:follow|obey)\s+(?:{_QUALIFIER}\s+){{0,4}}{_TARGET}\b", _I),
    ),
    "claims a role / system prompt": (
        re.compile(r"^[ \t>#*]*(?:system|assistant|developer)(?:\s+(?:prompt|message|instructions?))?\s*:\s*\S", _I),
        re.compile(r"\byou\s+are\s+now\s+(?:a|an|the|in|my|DAN|free|no\s+longer)\b", _I),
        re.compile(r"\bfrom\s+now\s+on,?\s+(?:you|your|the\s+assistant)\b", _I),
        re.compile(r"\bpretend\s+(?:to\s+be|that\s+you\s+are|you\s+are)\b", _I),
        re.compile(r"\b(?:new|updated|real|actual)\s+(?:system\s+)?(?:instructions?|prompt|role)\s*:", _I),
        re.compile(r"\byour\s+(?:new|real|true)\s+(?:role|instructions?|task|purpose)\b", _I),
        re.compile(r"\[\s*/?\s*(?:system|INST)\s*\]|<<\s*/?\s*SYS\s*>>", _I),
    ),
    "asks to reveal the prompt": (
        # "display the prompt" is how getpass documents itself: "the" needs a word that makes it the model's
        re.compile(r"\b(?:reveal|show|print|repeat|output|display|leak|disclose|tell\s+me|write\s+out|recite)\s+"
                   r"(?:\w+\s+){0,3}?(?:(?:the\s+|your\s+)?system\s+prompt|your\s+(?:initial\s+|original\s+|"
                   r"hidden\s+|secret\s+)?(?:instructions|prompt)|the\s+(?:initial|original|hidden|secret)\s+"
                   r"(?:instructions|prompt))\b", _I),
        re.compile(r"\bwhat\s+(?:is|are|were)\s+your\s+(?:system\s+prompt|(?:initial\s+|original\s+)?instructions)\b",
                   _I),
    ),
    "contains a fence tag": (re.compile(r"<\s*/?\s*source\b", _I),),
    "contains a chat control token": (
        re.compile(r"<\|[a-z0-9_]{2,40}\|>|<\s*/?\s*(?:start|end)_of_turn\s*>", _I),
    ),
}

_FENCE_TAG = re.compile(r"<(?=\s*/?\s*source)", re.IGNORECASE)
_CONTROL_TOKEN = re.compile(r"<(?=\|[A-Za-z0-9_]{2,40}\|>|\s*/?\s*(?:start|end)_of_turn\s*>)", re.IGNORECASE)
_ATTRIBUTE_BREAKS = str.maketrans({'"': "'", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " ", "\t": " ",
                                   "\v": " ", "\f": " "})


def instruction_like(text: str) -> list[str]:
    """The reasons ``text`` reads like instructions to a model rather than content (empty: none)."""
    return [reason for reason, patterns in REASONS.items() if any(p.search(text) for p in patterns)]


def flag_sources(hits: list[Any]) -> list[dict[str, Any]]:
    """One flag per hit (numbered from 1, as the sources of a prompt) whose title or text reads like
    instructions: ``{"source": n, "chunk_id": ..., "reasons": [...]}``."""
    flags: list[dict[str, Any]] = []
    for n, hit in enumerate(hits, 1):
        reasons = instruction_like("\n".join(p for p in (hit.title, hit.heading, hit.text) if p))
        if reasons:
            flags.append({"source": n, "chunk_id": hit.chunk_id, "reasons": reasons})
    return flags


def fence_text(text: str) -> str:
    """``text`` as the body of a source block: a ``<`` that would open or close a source tag or write a chat
    control token becomes ``&lt;``; nothing else changes."""
    return _CONTROL_TOKEN.sub("&lt;", _FENCE_TAG.sub("&lt;", text))


def fence_attribute(value: str) -> str:
    """``value`` as a quoted attribute of a source tag: ``"`` becomes ``'``, angle brackets ``&lt;``/``&gt;``,
    line breaks and tabs spaces."""
    return value.translate(_ATTRIBUTE_BREAKS)
