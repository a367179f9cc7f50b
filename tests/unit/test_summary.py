"""summary.json / summary.txt: query fingerprints of slow packages, error counts of error ones."""

from __future__ import annotations

import pickle

import pytest

from dblogpack.model import EntryDetail
from dblogpack.sqlshape import fingerprint_sql
from dblogpack.summary import SummaryBuilder, fingerprint_mongo, render_text


@pytest.mark.parametrize(
    ("statement", "fingerprint"),
    [
        ("SELECT * FROM t1 WHERE id = 42", "select * from t1 where id = ?"),
        ("select *  from T1\n\twhere id=7;", "select * from t1 where id=?"),
        (
            "SELECT 1 FROM u WHERE name = 'O''Brien' AND x = E'a\\n'",
            "select ? from u where name = ? and x = ?",
        ),
        ("SELECT a FROM b WHERE c = $1 AND d = $22", "select a from b where c = ? and d = ?"),
        ("DELETE FROM t WHERE id IN (1, 2, 3, 4)", "delete from t where id in (...)"),
        ("DELETE FROM t WHERE id IN (5,6)", "delete from t where id in (...)"),
        ("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')", "insert into t values (...)"),
        ("SELECT -3.5e3, .5, $$body$$", "select ?, ?, ?"),
        ("SELECT col_2 FROM t2 WHERE name='x'", "select col_2 from t2 where name=?"),
        ("Seq Scan (cost=0.00..2317.41 rows=1000)", "seq scan (cost=?..? rows=?)"),
    ],
)
def test_sql_fingerprints_fold_literals_lists_parameters_spaces_and_case(
    statement: str, fingerprint: str
) -> None:
    assert fingerprint_sql(statement) == fingerprint


def test_mongo_fingerprint_keeps_command_collection_and_operators_drops_values() -> None:
    command = (
        '{"find":"users","filter":{"age":{"$gt":30},"_id":{"$oid":"65a1"},"tags":["a","b"]},'
        '"lsid":{"id":{"$uuid":"x"}},"$db":"shop"}'
    )
    assert fingerprint_mongo(command) == (
        '{"find":"users","filter":{"age":{"$gt":"?"},"_id":"?","tags":["?"]}}'
    )


def test_legacy_mongo_command_text_has_its_values_replaced() -> None:
    assert fingerprint_mongo('find { find: "c", filter: { a: 1, b: "x", c: [1, 2, 3] } }') == (
        "find { find: ?, filter: { a: ?, b: ?, c: [?] } }"
    )


def _slow(statement: str, ms: float) -> EntryDetail:
    return EntryDetail(timestamp=0.0, severity="LOG", duration_ms=ms, statement=statement)


def test_slow_summary_ranks_fingerprints_by_total_duration() -> None:
    builder = SummaryBuilder("sql")
    for detail in [
        _slow("SELECT * FROM a WHERE id = 1", 10),
        _slow("SELECT * FROM a WHERE id = 2", 30),
        _slow("UPDATE b SET x = 5", 100),
    ]:
        builder.add(detail)

    summary = builder.to_json()

    assert list(summary) == [
        "entries", "fingerprints", "fingerprints_distinct", "fingerprints_overflow",
        "severities", "codes",
    ]
    assert [(f["fingerprint"], f["count"], f["total_ms"], f["mean_ms"], f["max_ms"])
            for f in summary["fingerprints"]] == [
        ("update b set x = ?", 1, 100.0, 100.0, 100.0),
        ("select * from a where id = ?", 2, 40.0, 20.0, 30.0),
    ]
    assert summary["fingerprints"][1]["example"] == "SELECT * FROM a WHERE id = 1"


def test_error_summary_counts_by_severity_and_code_with_one_example_each() -> None:
    builder = SummaryBuilder("sql")
    builder.add(EntryDetail(0.0, "ERROR", code="23505", message="duplicate key value 1"))
    builder.add(EntryDetail(0.0, "ERROR", code="23505", message="duplicate key value 2"))
    builder.add(EntryDetail(0.0, "FATAL", code="28P01", message="password authentication failed"))

    summary = builder.to_json()

    assert summary["severities"] == [
        {"severity": "ERROR", "count": 2, "example": "duplicate key value 1"},
        {"severity": "FATAL", "count": 1, "example": "password authentication failed"},
    ]
    assert [(c["code"], c["count"]) for c in summary["codes"]] == [("23505", 2), ("28P01", 1)]
    text = render_text(summary, "errors")
    assert "23505" in text and "password authentication failed" in text


def test_distinct_fingerprints_are_bounded_and_the_rest_counted() -> None:
    builder = SummaryBuilder("sql", max_fingerprints=10)
    builder.add(_slow("SELECT hot FROM t", 1))
    builder.add(_slow("SELECT hot FROM t", 1))
    for n in range(100):
        builder.add(_slow(f"SELECT c{n} FROM t", 1))

    summary = builder.to_json()

    assert summary["fingerprints_distinct"] <= 10
    assert summary["fingerprints"][0]["fingerprint"] == "select hot from t"
    tracked = sum(f["count"] for f in summary["fingerprints"])
    assert tracked + summary["fingerprints_overflow"] == 102


def test_partial_summaries_from_workers_merge_into_the_same_totals() -> None:
    whole, left, right = SummaryBuilder("sql"), SummaryBuilder("sql"), SummaryBuilder("sql")
    details = [_slow(f"SELECT {n} FROM t WHERE k = {n % 3}", n) for n in range(30)]
    for n, detail in enumerate(details):
        whole.add(detail)
        (left if n < 13 else right).add(detail)

    left.merge(pickle.loads(pickle.dumps(right)))

    assert left.to_json() == whole.to_json()


def test_a_slow_scan_groups_alike_entries_yet_summarises_them_as_one_by_one() -> None:
    from dblogpack.formats import build
    from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

    lines = [
        b"2024-05-01 12:00:0%d.000 UTC [%d] LOG:  duration: %d.5 ms  statement: %s\n"
        % (i % 10, 100 + i, 10 + 7 * i, b"SELECT 1" if i % 3 else b"UPDATE t SET a = 2")
        for i in range(12)
    ]
    lines.insert(5, b"\tAND b = 3\n")  # a continuation line makes entry 4's statement its own
    fmt = build(FormatConfig("pg-stderr", "%m [%p] "))
    result = fmt.scan(b"".join(lines), Query(TimeWindow(), LogKind.SLOW, details=True), "f", 0)
    grouped, one_by_one = SummaryBuilder("sql"), SummaryBuilder("sql")
    for group in result.details:
        grouped.add_group(group)
    statements = [b"SELECT 1" if i % 3 else b"UPDATE t SET a = 2" for i in range(12)]
    for i, statement in enumerate(statements):
        text = statement.decode() + ("\nAND b = 3" if i == 4 else "")
        one_by_one.add(_slow(text, 10 + 7 * i + 0.5))

    assert len(result.details) == 3  # SELECT 1, UPDATE, and the entry with a continuation line
    assert grouped.to_json()["fingerprints"] == one_by_one.to_json()["fingerprints"]
    assert grouped.to_json()["entries"] == 12


def test_an_error_scan_counts_each_level_and_sqlstate_with_its_first_message() -> None:
    from dblogpack.formats import build
    from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

    rows = [(b"ERROR", b"23505", b"dup 1"), (b"WARNING", b"01000", b"careful"),
            (b"ERROR", b"23505", b"dup 2"), (b"ERROR", b"42P01", b"no table"),
            (b"FATAL", b"28P01", b"bad password"), (b"ERROR", b"23505", b"dup 3")]
    log = b"".join(
        b"2024-05-01 12:00:0%d.000 UTC [%d] %s %s:  %s\n" % (i, 10 + i, code, level, text)
        for i, (level, code, text) in enumerate(rows)
    )
    fmt = build(FormatConfig("pg-stderr", "%m [%p] %e "))
    result = fmt.scan(log, Query(TimeWindow(), LogKind.ERROR, details=True), "f", 0)
    builder = SummaryBuilder("sql")
    for group in result.details:
        builder.add_group(group)
    summary = builder.to_json()

    assert summary["entries"] == 6
    assert [(s["severity"], s["count"], s["example"]) for s in summary["severities"]] == [
        ("ERROR", 4, "dup 1"), ("FATAL", 1, "bad password"), ("WARNING", 1, "careful"),
    ]
    assert [(c["code"], c["count"], c["example"]) for c in summary["codes"]] == [
        ("23505", 3, "dup 1"), ("01000", 1, "careful"), ("28P01", 1, "bad password"),
        ("42P01", 1, "no table"),
    ]
