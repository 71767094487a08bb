"""bench/instructions.py's pure parts: the requests it sends and its --calls table."""

from __future__ import annotations

import json

import instructions
from instructions import calls_table


def test_the_requests_are_run_pys_and_vary_where_a_cache_must_miss() -> None:
    for name in instructions.REQUESTS:
        made = json.loads(instructions.body_of(name, 7))
        assert made["model"] == "bench"
        if name in ("chat-miss", "embed", "embed-1536"):
            assert instructions.body_of(name, 7) != instructions.body_of(name, 8)
    assert len(json.loads(instructions.EMBEDDINGS)["data"][0]["embedding"]) == 256
    assert len(json.loads(instructions.EMBEDDINGS_1536)["data"][0]["embedding"]) == 1536


def test_each_run_numbers_its_requests_anew_with_as_many_digits() -> None:
    """A run that numbered its requests as the one before sent the same bodies: within a Redis
    cache's TTL its misses were hits. The digits stay 10, so every run's bodies are as long."""
    starts = [instructions.first_number() for _ in range(50)]
    assert len(set(starts)) > 1
    assert all(len(str(start)) == len(str(start + 10**6)) == 10 for start in starts)


def test_one_revision_lists_its_most_called_functions() -> None:
    table = calls_table({"HEAD": {"a.py:1:f": 300, "C:len": 600, "b.py:2:g": 3}}, requests=100, top=2)
    assert table.splitlines()[2:] == ["| C:len | 6.00 |", "| a.py:1:f | 3.00 |"]


def test_two_revisions_list_what_changed_most() -> None:
    before = {"a.py:1:f": 300, "C:len": 600, "gone.py:1:h": 100}
    after = {"a.py:1:f": 300, "C:len": 840, "new.py:5:k": 200, "b.py:2:g": 10}
    lines = calls_table({"main": before, ".": after}, requests=100).splitlines()
    assert lines[2] == "| (all) | 10.0 | 13.5 | |"
    assert lines[3:] == [
        "| C:len | 6.00 | 8.40 | +2.40 |",
        "| new.py:5:k | 0.00 | 2.00 | +2.00 |",
        "| gone.py:1:h | 1.00 | 0.00 | -1.00 |",
    ]  # (b.py: +0.10, under half a call a request)
