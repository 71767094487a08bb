"""In-process counters on a clock of the test's own: the window opens with a scope's first request
and lasts 60 s, a refusal says when it ends, tokens settle into the window that holds their estimate
(or the current one), and ended windows are forgotten."""

from __future__ import annotations

from seance.gateway.ratelimits import Entry
from seance.gateway.ratelimits.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_opens_with_the_first_request_and_lasts_60_s() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    entries: tuple[Entry, ...] = (("key:a", 2, None, None),)
    clock.now = 1010.0
    assert store.acquire_now(entries, 0).admitted and store.acquire_now(entries, 0).admitted
    refused = store.acquire_now(entries, 0)
    assert not refused.admitted and refused.limit == "rpm" and refused.retry_after() == 60
    clock.now = 1069.5
    assert store.acquire_now(entries, 0).retry_after() == 1
    clock.now = 1070.0  # 60 s after the window opened: a new one
    fresh = store.acquire_now(entries, 0)
    assert fresh.admitted and fresh.counts[0][:2] == (1070.0, 1)  # (start, requests)


def test_tokens_settle_where_their_estimate_was_counted() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    entries: tuple[Entry, ...] = (("key:t", None, 100, None),)
    verdict = store.acquire_now(entries, 30)
    held = (store, entries, verdict.counts, 30)
    assert store.windows["key:t"][2] == 30
    store.release_now(held, 12)
    assert store.windows["key:t"][2] == 12  # the estimate replaced by the real usage
    late = store.acquire_now(entries, 30)
    held = (store, entries, late.counts, 30)
    clock.now += 61  # the answer ends in the next minute: its tokens count there
    store.release_now(held, 50)
    assert store.windows["key:t"][0] == clock.now and store.windows["key:t"][2] == 50


def test_parallel_counts_what_is_in_flight() -> None:
    store = MemoryStore(Clock())
    entries: tuple[Entry, ...] = (("key:p", None, None, 1), ("team:x", 100, None, None))
    first = store.acquire_now(entries, 0)
    refused = store.acquire_now(entries, 0)
    assert not refused.admitted and refused.limit == "parallel" and refused.retry_after() == 1
    assert store.windows["team:x"][1] == 1  # the refused request counted nowhere
    store.release_now((store, entries, first.counts, 0), 0)
    assert "key:p" not in store.in_flight and store.acquire_now(entries, 0).admitted


def test_ended_windows_are_forgotten() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    for i in range(1100):
        store.acquire_now(((f"user:{i}", 5, None, None),), 0)
    clock.now += 61
    for i in range(1100, 2300):
        store.acquire_now(((f"user:{i}", 5, None, None),), 0)
    assert len(store.windows) <= 1200


def test_take_counts_in_every_entry_or_in_none() -> None:
    """The admitted path hands back the windows themselves; a refusal by any entry counts nowhere."""
    store = MemoryStore(Clock())
    entries: tuple[Entry, ...] = (("key:k", 10, 100, 5), ("team:t", 2, None, None))
    first = store.take(entries, 7)
    assert first is not None and first[0] is store.windows["key:k"] and first[1] is store.windows["team:t"]
    assert [w[1:] for w in first] == [[1, 7], [1, 7]] and store.in_flight == {"key:k": 1}
    assert store.take(entries, 7) is not None
    assert store.take(entries, 7) is None  # the team is at its rpm: the key counts nothing either
    assert store.windows["key:k"][1:] == [2, 14] and store.in_flight == {"key:k": 2}
    refused = store.acquire_now(entries, 7)
    assert not refused.admitted and refused.refused_by == 1 and refused.limit == "rpm"


def test_one_scope_counts_as_several_do() -> None:
    """take and release_now have a path of their own for a single entry (a key's limits): the same
    counts, refusals and releases as the general one, which a second scope without limits makes."""
    for extra in ((), (("team:none", None, None, None),)):
        clock = Clock()
        store = MemoryStore(clock)
        entries: tuple[Entry, ...] = (("key:one", 3, 100, 2), *extra)
        first = store.take(entries, 40)
        second = store.take(entries, 40)
        assert first is not None and second is not None
        assert store.take(entries, 40) is None, extra  # parallel: 2 in flight
        assert store.windows["key:one"][1:] == [2, 80] and store.in_flight["key:one"] == 2
        store.release_now((store, entries, [(w[0], 0, 0, 0) for w in first], 40), 10)
        assert store.windows["key:one"][2] == 50 and store.in_flight["key:one"] == 1
        assert store.take(entries, 60) is not None  # 110 tokens now, over the tpm for the next one
        assert store.take(entries, 0) is None and store.acquire_now(entries, 0).limit == "rpm"
        store.release_now((store, entries, [(w[0], 0, 0, 0) for w in second], 40), 40)
        clock.now += 61  # the window ended: the usage of an answer ending now opens the next one
        store.release_now((store, entries, [(1000.0, 0, 0, 0)] * len(entries), 60), 5)
        assert store.windows["key:one"] == [clock.now, 0, 5] and "key:one" not in store.in_flight


def test_the_last_entry_can_be_given_back_or_left_without_tokens() -> None:
    """The limits hook counts a deployment last (with Redis down, here): a request that never went
    there gives it back; one whose answer came from another try leaves it no tokens."""
    from seance.gateway.ratelimits import GIVE_BACK, NO_TOKENS, SETTLE

    clock = Clock()
    store = MemoryStore(clock)
    entries: tuple[Entry, ...] = (("key:k", 10, 1000, None), ("deployment:d", 10, 1000, None))
    for last, key_after, deployment_after in (
        (SETTLE, [1, 20], [1, 20]),
        (NO_TOKENS, [2, 40], [2, 20]),
        (GIVE_BACK, [3, 60], [2, 20]),
    ):
        verdict = store.acquire_now(entries, 30)
        store.release_now((store, entries, verdict.counts, 30), 20, last)
        assert store.windows["key:k"][1:] == key_after
        assert store.windows["deployment:d"][1:] == deployment_after
