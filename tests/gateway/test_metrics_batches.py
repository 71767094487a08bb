"""The request path's batches (`Count`, `Tally`): nothing reaches prometheus_client until a push,
then exactly what was added; a histogram whose insides are not the known ones is observed at once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from seance.gateway.metrics import LATENCY_BUCKETS, SORT_FROM, Count, Observed, Tally, tally


def test_a_count_reaches_its_counter_on_push_only() -> None:
    registry = CollectorRegistry()
    count = Count(Counter("c", "c", registry=registry))
    count.amount += 2
    count.amount += 0.5
    assert registry.get_sample_value("c_total") == 0
    count.push()
    count.push()  # nothing new: nothing added
    assert registry.get_sample_value("c_total") == 2.5
    assert count.amount == 0


def test_a_tally_pushes_buckets_and_sum_as_observe_would() -> None:
    registry = CollectorRegistry()
    batched = tally(Histogram("h", "h", registry=registry, buckets=LATENCY_BUCKETS))
    direct = Histogram("d", "d", registry=registry, buckets=LATENCY_BUCKETS)
    assert isinstance(batched, Tally)
    for amount in (0.001, 0.005, 0.0051, 0.3, 0.3, 7.0, 1000.0):
        batched.observe(amount)
        direct.observe(amount)
    assert registry.get_sample_value("h_count") == 0
    batched.push()
    for bound in ("0.005", "0.00625", "0.5", "7.0", "+Inf"):
        assert registry.get_sample_value("h_bucket", {"le": bound}) == registry.get_sample_value(
            "d_bucket", {"le": bound}
        )
    assert registry.get_sample_value("h_sum") == registry.get_sample_value("d_sum")
    assert registry.get_sample_value("h_count") == 7


def test_a_histogram_of_other_buckets_is_observed_at_once() -> None:
    registry = CollectorRegistry()
    other = tally(Histogram("o", "o", registry=registry, buckets=(1.0, 2.0)))
    assert isinstance(other, Observed)
    other.observe(1.5)
    assert registry.get_sample_value("o_bucket", {"le": "2.0"}) == 1


def test_a_tally_keeps_observing_after_a_push() -> None:
    """`observe` is bound to the list of amounts: a push must empty that list, not replace it."""
    registry = CollectorRegistry()
    batched = tally(Histogram("h", "h", registry=registry, buckets=LATENCY_BUCKETS))
    batched.observe(0.3)
    batched.push()
    batched.observe(2.0)
    batched.observe(0.001)
    batched.push()
    batched.push()  # nothing new: nothing added
    assert registry.get_sample_value("h_count") == 3
    assert registry.get_sample_value("h_bucket", {"le": "0.005"}) == 1
    assert registry.get_sample_value("h_sum") == 0.3 + (2.0 + 0.001)  # each push adds its own sum


def test_a_tally_of_many_amounts_pushes_what_observe_would() -> None:
    """A push of SORT_FROM amounts or more bins them by sorting: the same buckets, and the same sum
    (added in the order observed)."""
    registry = CollectorRegistry()
    batched = tally(Histogram("h", "h", registry=registry, buckets=LATENCY_BUCKETS))
    direct = Histogram("d", "d", registry=registry, buckets=LATENCY_BUCKETS)
    amounts = [(i * 7919 % 1000) * 0.0137 for i in range(3 * SORT_FROM)] + [0.005, 0.00625, 300.0, 1e6]
    for amount in amounts:
        batched.observe(amount)
        direct.observe(amount)
    batched.push()
    assert registry.get_sample_value("h_bucket", {"le": "1.0"}) == 10  # (the labels are the ones read)
    for bound in [*(str(float(b)) for b in LATENCY_BUCKETS[:-1]), "+Inf"]:
        assert registry.get_sample_value("h_bucket", {"le": bound}) == registry.get_sample_value(
            "d_bucket", {"le": bound}
        ), bound
    assert registry.get_sample_value("h_sum") == registry.get_sample_value("d_sum")
    assert registry.get_sample_value("h_count") == len(amounts)
