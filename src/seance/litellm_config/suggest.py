"""'Did you mean …?' for a key that is not known."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.75  # difflib's similarity ratio, 0..1; model_lst ~ model_list is 0.95, temprature ~ 0.95


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The known name `word` is most likely a misspelling of, if any is close enough."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=CUTOFF)
    return matches[0] if matches else None


def typo_of(word: str, candidates: Iterable[str]) -> str | None:
    """For sections open to any key (litellm_params, model_info): the known name `word` differs from
    by a slip of the keyboard only — one letter wrong, missing, extra or swapped (`tmp` for `tpm`), or
    a close name of nearly the same length — so that a legitimate longer or shorter key
    (`max_new_tokens` beside `max_tokens`) is not taken for a typo."""
    names = list(candidates)
    if len(word) >= 3:
        for name in names:
            if _one_slip(word, name):
                return name
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.85)
    if match and abs(len(match[0]) - len(word)) <= 2:
        return match[0]
    return None


def _one_slip(a: str, b: str) -> bool:
    """Whether a and b differ by exactly one edit: a substitution, insertion, deletion or swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[i:] == long[i + 1 :]
