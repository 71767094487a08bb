from pathlib import Path

from load import Check, lua_string, parse_output, write_script


def test_lua_string_cannot_be_closed_early_by_its_text() -> None:
    assert lua_string("plain") == "[[\nplain]]"
    # "[DONE]" ends in "]", which would join a level-0 closing bracket.
    assert lua_string("[DONE]") == "[=[\n[DONE]]=]"
    assert lua_string("a]=]b") == "[==[\na]=]b]==]"


def test_parse_output_reads_counts_latency_and_the_first_bad_answer() -> None:
    out = (
        "Running 3s test @ http://127.0.0.1:1/x\n"
        "BENCH_RESULT 1000 2000000 990 6 4 0 1 0 6 2 250.0 1500.0 300.5\n"
        'BENCH_FIRST_BAD 502 {"error": {}}\n'
    )
    result = parse_output(out)
    assert result.requests == 1000
    assert result.seconds == 2.0
    assert result.rps == 495.0  # good answers only
    assert (result.bad_status, result.bad_body, result.socket_errors, result.timeouts) == (6, 4, 1, 2)
    assert result.failures == 1000 - 990 + 1 + 2
    assert (result.p50_ms, result.p99_ms) == (0.25, 1.5)
    assert result.first_bad == '502 {"error": {}}'


def test_check_names_what_is_wrong() -> None:
    check = Check(("today?", "[DONE]"), min_events=3)
    assert check.problem(200, "data: a\n\ndata: today?\n\ndata: [DONE]\n\n") is None
    assert "status 500" in (check.problem(500, "boom") or "")
    assert "without ['[DONE]']" in (check.problem(200, "data: today?") or "")
    assert "2 data lines" in (check.problem(200, "data: today?\n\ndata: [DONE]") or "")


def test_a_varying_script_gives_every_request_a_body_of_its_own(tmp_path: Path) -> None:
    script = tmp_path / "miss.lua"
    write_script(script, '{"model":"m"}', Check(("x",)), "sk", vary=True)
    text = script.read_text()
    assert "function request()" in text and "',\"seed\":'" in text
    write_script(script, '{"model":"m"}', Check(("x",)), "sk")
    assert "function request()" not in script.read_text()  # one fixed body: wrk's fast path
