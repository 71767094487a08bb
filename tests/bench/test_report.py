import pytest

from load import LoadResult
from report import (
    Measurement,
    Results,
    all_features_bars,
    all_features_table,
    check_bars,
    flaky_table,
    medians,
    paired,
    results_table,
    servers_table,
    virtual_key_bars,
)


def _load(rps: float, p50: float = 1.0, p99: float = 2.0, bad_status: int = 0) -> LoadResult:
    requests = int(rps * 10)
    return LoadResult(
        requests=requests,
        seconds=10.0,
        good=requests - bad_status,
        bad_status=bad_status,
        bad_body=0,
        socket_errors=0,
        timeouts=0,
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=p50,
        first_bad="",
    )


def _run(seance_bad_status: int = 0) -> list[Measurement]:
    return [
        Measurement("direct", "chat-c1", _load(20000, 0.05, 0.2), 0.01, 14),
        Measurement("seance", "chat-c1", _load(3000, 0.3, 0.9, seance_bad_status), 0.1, 60),
        Measurement("direct", "slow-c256", _load(5000, 51, 60), 0.01, 14),
        Measurement("seance", "slow-c256", _load(3500, 70, 160), 0.1, 80),
        Measurement("seance", "chat-c64", _load(9000), 0.10, 60),
        Measurement("litellm", "chat-c64", _load(100), 15.0, 400),
        Measurement("seance", "anthropic-c64", _load(8000), 0.45, 60),
    ]


def test_bars_from_one_run() -> None:
    verdicts = {bar.title: (bar.verdict, bar.value) for bar in check_bars(Results(_run()))}
    assert verdicts["c=1 added p50 latency over direct"][0] == "PASS"
    assert verdicts["c=1 added p99 latency over direct"][0] == "PASS"
    assert verdicts["chat c=64 throughput vs LiteLLM"] == ("PASS", 90.0)
    assert verdicts["50 ms upstream c=256 throughput vs direct"] == ("FAIL", 70.0)
    assert verdicts["50 ms upstream c=256 p99 latency"] == ("FAIL", 160.0)
    assert verdicts["Anthropic translation CPU over pass-through (c=64)"][0] == "FAIL"
    assert verdicts["stream c=16 throughput vs LiteLLM"] == ("N/A", None)  # not measured
    assert verdicts["Seance requests that failed (non-200, wrong body, timeout)"] == ("PASS", 0.0)


def test_failed_requests_fail_a_bar_and_show_in_the_table() -> None:
    run = _run(seance_bad_status=7)
    verdicts = {bar.title: bar.verdict for bar in check_bars(Results(run))}
    assert verdicts["Seance requests that failed (non-200, wrong body, timeout)"] == "FAIL"
    table = results_table(Results(run), {"chat-c1": "chat c=1"})
    assert "| chat c=1 | seance | 2,999 |" in table  # good answers only
    assert "7 (7 non-200, 0 bad body, 0 timeouts)" in table


def test_the_flaky_bars_and_table_compare_each_gateway_with_its_healthy_run() -> None:
    run = [
        Measurement("seance", "chat-c16", _load(5000, 2.0, 4.0), 0.1, 60),
        Measurement("seance", "flaky-c16", _load(4800, 2.0, 7.0), 0.1, 60),
        Measurement("litellm", "chat-c16", _load(50, 300.0, 400.0), 15.0, 400),
        Measurement("litellm", "flaky-c16", _load(40, 350.0, 1200.0, bad_status=8), 15.0, 400),
    ]
    verdicts = {bar.title: (bar.verdict, bar.value) for bar in check_bars(Results(run))}
    assert verdicts["flaky c=16: Seance success rate"] == ("PASS", 100.0)
    assert verdicts["flaky c=16: Seance p99 vs its healthy chat c=16 p99"] == ("PASS", 1.75)
    table = flaky_table(Results(run))
    assert "| seance | 100.00 % | 4,800 | 7.00 | 4.00 | 1.75 | - |" in table
    assert "| litellm | 98.00 % | 39 | 1200.00 | 400.00 | 3.00 | - |" in table
    slow = [*run[:1], Measurement("seance", "flaky-c16", _load(4000, 2.0, 9.0, bad_status=1), 0.1, 60)]
    verdicts = {bar.title: bar.verdict for bar in check_bars(Results(slow))}
    assert verdicts["flaky c=16: Seance success rate"] == "FAIL"
    assert verdicts["flaky c=16: Seance p99 vs its healthy chat c=16 p99"] == "FAIL"
    assert not any("flaky" in bar.title for bar in check_bars(Results(run[:1])))  # not run: no bar


def _all_features_run(redis_miss_rps: float = 4000, redis_c1_p99: float = 1.2) -> list[Measurement]:
    return [
        Measurement("seance", "chat-c1", _load(3000, 0.3, 0.9), 0.3, 60),
        Measurement("seance", "chat-c64", _load(6000), 0.2, 60),
        Measurement("seance", "cache-miss-c64", _load(5000), 0.2, 60),
        Measurement("seance-all", "chat-c64", _load(4000), 0.3, 70),  # below 80 %: the bar uses the miss run
        Measurement("seance-all", "cache-miss-c64", _load(4500), 0.25, 70),
        Measurement("seance-all", "cache-hit-c64", _load(9600), 0.1, 70),
        Measurement("seance-all-redis", "chat-c1", _load(2000, 0.5, redis_c1_p99), 0.5, 70),
        Measurement("seance-all-redis", "cache-miss-c64", _load(redis_miss_rps), 0.4, 70),
        Measurement("seance-all-redis", "cache-hit-c64", _load(8000), 0.2, 70),
        Measurement("litellm", "cache-miss-c64", _load(50), 18.0, 400),
        Measurement("litellm-all", "cache-miss-c64", _load(40), 20.0, 420),
    ]


def test_the_all_features_bars_compare_the_miss_path_and_a_hit_with_the_bare_gateway() -> None:
    verdicts = {bar.title: (bar.verdict, bar.value) for bar in all_features_bars(Results(_all_features_run()))}
    assert verdicts == {
        "seance-all: c=64 throughput on the miss path (cache-miss-c64) vs seance": ("PASS", 90.0),
        "seance-all: cache hit c=64 throughput vs seance chat c=64": ("PASS", 1.6),
        "seance-all-redis: c=64 throughput on the miss path (cache-miss-c64) vs seance": ("PASS", 80.0),
        "seance-all-redis: chat c=1 (a miss) added p99 over seance": ("PASS", 1.2 - 0.9),
        "seance-all-redis: cache hit c=64 throughput vs seance chat c=64": ("FAIL", 8000 / 6000),
    }
    slow = {bar.title: bar.verdict for bar in all_features_bars(Results(_all_features_run(3990, 1.31)))}
    assert slow["seance-all-redis: c=64 throughput on the miss path (cache-miss-c64) vs seance"] == "FAIL"
    assert slow["seance-all-redis: chat c=1 (a miss) added p99 over seance"] == "FAIL"


def test_without_a_miss_run_the_throughput_bar_takes_chat_c64_and_a_missing_run_is_na() -> None:
    run = [m for m in _all_features_run() if m.scenario != "cache-miss-c64" and m.target != "seance-all-redis"]
    run.append(Measurement("seance-all-redis", "chat-c64", _load(5000), 0.3, 70))
    verdicts = {bar.title: (bar.verdict, bar.value) for bar in all_features_bars(Results(run))}
    assert verdicts["seance-all: c=64 throughput on the miss path (chat-c64) vs seance"] == ("FAIL", 100 * 4000 / 6000)
    assert verdicts["seance-all-redis: chat c=1 (a miss) added p99 over seance"] == ("N/A", None)
    assert not all_features_bars(Results(run[:2]))  # no all-features target ran: no bars


def test_the_all_features_table_gives_each_target_against_seance_and_litellm_as_ratios() -> None:
    titles = {"cache-miss-c64": "cache miss c=64"}
    table = all_features_table(Results(_all_features_run()), ["chat-c1", "cache-miss-c64", "slow-c256"], titles)
    rows = table.splitlines()
    assert len(rows) == 4  # header, rule, chat-c1, cache-miss-c64 (slow-c256: no all-features run)
    assert rows[3] == (
        "| cache miss c=64 | 5,000 | 4,500 | 4,000 | 50 | 40 | 0.900 | 0.800 | 0.800 | 100.000 "
        "| 2.00 / 2.00 / 2.00 / 2.00 | 0.200 / 0.250 / 0.400 / 20.000 |"
    )
    assert rows[2].startswith("| chat-c1 | 3,000 | - | 2,000 | - | - | - | 0.667 | - | - |")


def test_the_virtual_key_bars_compare_sqlite_and_postgresql_with_the_bare_gateway() -> None:
    run = [
        Measurement("seance-nodb", "chat-c64", _load(6000), 0.2, 70),
        Measurement("seance-nodb", "chat-c1", _load(2000, 0.4, 0.6), 0.3, 70),
        Measurement("seance-vkey", "chat-c64", _load(5400), 0.22, 90),
        Measurement("seance-vkey", "chat-c1", _load(1900, 0.45, 0.8), 0.31, 90),
        Measurement("seance-vkey-pg", "chat-c64", _load(4800), 0.25, 95),
        Measurement("seance-vkey-pg", "chat-c1", _load(1500, 0.6, 1.1), 0.4, 95),
    ]
    verdicts = {bar.title: (bar.verdict, round(bar.value or 0, 3)) for bar in virtual_key_bars(Results(run))}
    assert verdicts == {
        "seance-vkey: chat c=64 throughput vs seance-nodb": ("PASS", 90.0),
        "seance-vkey: chat c=1 added p99 over seance-nodb": ("PASS", 0.2),
        "seance-vkey-pg: chat c=64 throughput vs seance-nodb": ("FAIL", 80.0),
        "seance-vkey-pg: chat c=1 added p99 over seance-nodb": ("FAIL", 0.5),
    }
    assert not virtual_key_bars(Results(run[:2]))  # no virtual-key target ran: no bars


def test_medians_of_rounds_take_each_figure_s_median_and_keep_failures() -> None:
    rounds = [
        Measurement("seance", "chat-c1", _load(3000, 0.30, 9.0), 0.10, 60),
        Measurement("nodb", "chat-c1", _load(4000, 0.20, 0.5), 0.08, 50),
        Measurement("seance", "chat-c1", _load(2000, 0.20, 0.9), 0.12, 70),
        Measurement("nodb", "chat-c1", _load(4100, 0.20, 0.6, bad_status=3), 0.08, 50),
        Measurement("seance", "chat-c1", _load(2500, 0.25, 1.1), 0.11, 65),
        Measurement("nodb", "chat-c1", _load(4200, 0.20, 0.4), 0.08, 50),
        Measurement("litellm", "chat-c1", None, 0.0, 0.0, "did not start: no"),
    ]
    merged = medians(rounds)
    assert [(m.target, m.scenario) for m in merged] == [("seance", "chat-c1"), ("nodb", "chat-c1"),
                                                        ("litellm", "chat-c1")]  # fmt: skip
    seance, nodb, litellm = merged
    assert seance.load is not None and seance.load.rps == 2500  # the median round's requests
    assert (seance.load.p50_ms, seance.load.p99_ms) == (0.25, 1.1)  # one slow round's 9 ms p99 is outvoted
    assert (seance.cpu_ms_per_request, seance.rss_mb) == (0.11, 70)
    assert not nodb.ok and nodb.load is not None and nodb.load.bad_status == 3  # a failed round stands
    assert litellm.error == "did not start: no"
    assert medians(rounds[:1]) == rounds[:1]


def test_servers_table_lists_only_runs_that_used_a_database() -> None:
    runs = [
        Measurement("seance-nodb", "chat-c64", _load(9000), 0.07, 60, servers_cpu_ms_per_request=0.001),
        Measurement("seance-vkey-pg", "chat-c64", _load(8000), 0.08, 60, servers_cpu_ms_per_request=0.012),
    ]
    table = servers_table(Results(runs), {"chat-c64": "chat c=64"})
    assert "seance-vkey-pg | 0.012 | 0.080" in table and "seance-nodb" not in table
    assert servers_table(Results(runs[:1]), {}) == ""


def test_paired_bars_take_each_rounds_ratio_and_stand_on_the_median_round() -> None:
    def round_of(vkey: float, nodb: float) -> Results:
        return Results([
            Measurement("seance-vkey", "chat-c64", _load(vkey), 0.08, 60),
            Measurement("seance-nodb", "chat-c64", _load(nodb), 0.06, 60),
        ])  # fmt: skip

    # medians of each target (12,338 / 15,385 = 80.2 %) would mix rounds; the rounds' own ratios
    # are 85.8 %, 84.0 % and 80.0 %
    rounds = [round_of(13888, 16179), round_of(12338, 14693), round_of(12313, 15385)]
    bars = {bar.title: bar for bar in paired(virtual_key_bars, rounds)}
    bar = bars["seance-vkey: chat c=64 throughput vs seance-nodb"]
    assert bar.value == pytest.approx(12338 / 14693 * 100) and bar.verdict == "FAIL"
    assert paired(virtual_key_bars, rounds[:1]) == virtual_key_bars(rounds[0])
