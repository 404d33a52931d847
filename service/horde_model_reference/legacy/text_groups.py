"""The `text_model_group` of a text model: its name without author, size, version, quant and variant.

The rules reproduce the reference implementation's grouping (8.6.2), so that every record converted
from models.csv lands in the same group as in the upstream v2 file: strip a backend prefix
(`aphrodite/`, `koboldcpp/`) and the author (`org/`), then remove, in this order, a leading dotted
version (`4.2.0-`), the first size token (`8B`, `8x7B`), the first `v`-version (`v0.1`), the first
quantisation (`Q4_K_M`, `GGUF`), the first variant word (`Instruct`), and the first date-like token
(`08-2024`, `2407`); what remains, with doubled separators collapsed and edges trimmed, is the group.
"""

from __future__ import annotations

import re
from functools import lru_cache

from horde_model_reference.registries import TEXT_BACKENDS

__all__ = ["text_model_group"]

_LEADING_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?[_\-]")

_I = re.IGNORECASE
_STAGES: tuple[tuple[re.Pattern[str], ...], ...] = (
    (  # size: 7B, 1.5B, 7B1; mixture of experts: 8x7B
        re.compile(r"(?<![a-zA-Z])\d+\.?\d*[BMK]\d*(?![a-zA-Z])", _I),
        re.compile(r"(?<![a-zA-Z])\d+x\d+[BMK](?![a-zA-Z])", _I),
    ),
    (  # version: v2.1, V0.420, v2
        re.compile(r"(?<![a-zA-Z0-9])[vV]\d+(?:\.\d+)+(?![a-zA-Z0-9])", _I),
        re.compile(r"(?<![a-zA-Z0-9])[vV]\d+(?![a-zA-Z0-9.])", _I),
    ),
    (  # quantisation
        re.compile(r"\bQ[2-8]_K(?:_[SMLH])?\b", _I),
        re.compile(r"\bQ[2-8]_[01]\b", _I),
        re.compile(r"\bQ[2-8]\b", _I),
        re.compile(r"\b(?:GGUF|GGML|GPTQ|AWQ|EXL2)\b", _I),
        re.compile(r"\b(?:fp16|fp32|int8|int4)\b", _I),
    ),
    (  # variant
        re.compile(r"\b(?:Instruct|Chat|Code|Base|Uncensored|Finetune|FT)\b", _I),
        re.compile(r"\b(?:Thinking|Reasoning)\b", _I),
        re.compile(r"\b(?:turbo|preview|latest)\b", _I),
    ),
    (  # date-like: 08-2024, 2024-08, 2407
        re.compile(r"(?<![a-zA-Z0-9])\d{2}-\d{4}(?![a-zA-Z0-9])"),
        re.compile(r"(?<![a-zA-Z0-9])\d{4}-\d{2}(?![a-zA-Z0-9])"),
        re.compile(r"(?<![a-zA-Z0-9])\d{4}(?![a-zA-Z0-9])"),
    ),
)
_DOUBLED_SEPARATOR = re.compile(r"(-|_| |\.)\1+")
_BACKEND_PREFIXES = tuple(f"{backend.value}/" for backend in TEXT_BACKENDS)


def _strip_first(name: str, patterns: tuple[re.Pattern[str], ...]) -> str:
    for pattern in patterns:
        match = pattern.search(name)
        if match:
            return name[: match.start()] + name[match.end() :]
    return name


@lru_cache(maxsize=4096)
def text_model_group(name: str) -> str:
    """The group of a text model name, for example 'Llama-3' for 'meta/Llama-3-8B-Instruct'."""
    for prefix in _BACKEND_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    model = name.split("/", 1)[1] if "/" in name else name
    rest = _LEADING_VERSION.sub("", model, count=1)
    for patterns in _STAGES:
        rest = _strip_first(rest, patterns)
    group = _DOUBLED_SEPARATOR.sub(r"\1", rest).strip("-_ .")
    return group or model
