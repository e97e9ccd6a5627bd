"""Match a free-text drug name against the drug catalogue (generic and brand names)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .models import DrugCatalogEntry


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def match_drug(name: str, entries: Iterable[DrugCatalogEntry]) -> DrugCatalogEntry | None:
    """Case-insensitive: an exact generic or brand name first, then a catalogue name standing
    as whole words inside the text ("Prednisolone 5 mg tablets" → glucocorticoid). The
    longest match wins, so "nirmatrelvir/ritonavir" beats "ritonavir"."""
    wanted = _words(name)
    best: tuple[int, DrugCatalogEntry] | None = None
    for entry in entries:
        for candidate in entry.names():
            words = _words(candidate)
            if words == wanted:
                return entry
            if words.strip() and words in wanted and (best is None or len(words) > best[0]):
                best = (len(words), entry)
    return best[1] if best else None
