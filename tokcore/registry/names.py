"""Did-you-mean for mistyped names (components, kinds, parameters, config keys).

A typo is most often one edit: a letter swapped with its neighbour (`fqs` for `fsq`), one
missing, doubled or wrong. So candidates are ranked by the optimal-string-alignment distance
(Levenshtein plus adjacent transpositions, each one edit), then by whether they are the same
letters in another order, then by difflib's similarity; a candidate is suggested when it is
within a third of the name's length in edits (at least one), or difflib finds it similar.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
    adjacent letters each cost one."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate `name` was most likely meant to be, or None when none is close."""
    low = name.lower()

    def rank(c: str) -> tuple[int, bool, float]:
        return (edit_distance(low, c.lower()), sorted(low) != sorted(c.lower()),
                -difflib.SequenceMatcher(None, low, c.lower()).ratio())

    close = [c for c in dict.fromkeys(candidates)
             if edit_distance(low, c.lower()) <= max(1, len(name) // 3)
             or difflib.SequenceMatcher(None, low, c.lower()).ratio() >= cutoff]
    return min(close, key=rank) if close else None
