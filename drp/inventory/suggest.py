"""Suggestions for misspelt names: the nearest host or group, and typo distances."""

from __future__ import annotations


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else ""


def _distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions from ``a`` to ``b``."""
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            )
        previous = current
    return previous[-1]


#: A bare jump name this close to an inventory host is taken for a typo of it.
TYPO_DISTANCE = 2


def _typo_edits(name: str) -> int:
    """How many edits of ``name`` are still a typo of it: one per three letters, at most two.

    "bastoin" is "bastion" mistyped and "db2" may be "db1", but "gw0" is no typo
    of "h10", nor "db2" of "b": short names are only a few edits from anything.
    """
    return min(TYPO_DISTANCE, len(name) // 3)
