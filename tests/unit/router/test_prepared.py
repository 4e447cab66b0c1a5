"""Statements run through ``router.prepared`` send the driver exactly what ``conn.execute``
sends, and fail the way it fails, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import AutoClass, Channel, Contact, Party, ThreadHints
from normalizer.intake import IdempotencyKeyConflict
from router import prepared
from router.identity import _NEW_IDENTITY, _NEW_REQUESTER
from router.outbox import Outbox, claim_due, enqueue
from router.router import Router
from router.schema import metadata
from router.schema import outbox as outbox_table
from router.store import Store, _unique_violation
from tests.unit.router.conftest import Clock, attachment, email, make_settings, other

SETTINGS = make_settings(ticket_prefix="SD")
WHEN = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def _api(external_id: str, text: str) -> Contact:
    body = f'{{"from": {{"email": "dave@example.org"}}, "text": "{text}"}}'.encode()
    return replace(
        other(Channel.API, Party(email="dave@example.org", phone="+4930123456"), external_id, text),
        raw=body,
        raw_type="application/json",
    )


def _scenario() -> list[Contact]:
    """Every statement of the intake path: new and known requesters, replies, duplicates, a
    key claimed by another sender, API, Slack, SMS and calls, attachments, a bounce."""
    first = email(message_id="a1@mail.example.org")
    return [
        first,
        email(message_id="a2@mail.example.org", in_reply_to=("a1@mail.example.org",)),
        email(message_id="a3@mail.example.org", subject="Another thing", name="Alice B."),
        first,  # a retry: a duplicate
        email(  # a long References chain: looked up by a statement built for it
            message_id="a4@mail.example.org",
            references=(*(f"r{n}@mail.example.org" for n in range(20)), "a1@mail.example.org"),
        ),
        email("mallory@example.net", message_id="a1@mail.example.org", name=None),
        email("bob@example.org", to=("servicedesk@example.com", "carol@example.org")),
        email("carol@example.org", subject="Re: [SD-5]", subject_refs=("SD-5",)),
        email(attachments=(attachment(b"log line\n"), attachment(b"x" * 300, "big.bin"))),
        email("mailer-daemon@example.org", auto=AutoClass.BOUNCE, subject="Undelivered"),
        _api("api-1", "VPN down"),
        _api("api-1", "VPN down"),
        _api("api-1", "something else"),
        replace(
            other(Channel.SLACK, Party(slack_user_id="U1", name="Eve"), "slack-1"),
            thread=ThreadHints(chat_thread="C1:1.5"),
        ),
        replace(
            other(Channel.SMS, Party(phone="+4930999999"), "SM1"),
            thread=ThreadHints(chat_thread="sms:+4930999999", chat_window_seconds=3600),
        ),
        replace(
            other(Channel.PHONE, Party(phone="+4930999999"), "CA1:rec"),
            thread=ThreadHints(call_id="CA1"),
        ),
        replace(
            other(Channel.PHONE, Party(phone="+4930999999"), "CA1:text", "my printer"),
            thread=ThreadHints(call_id="CA1"),
        ),
    ]


SCENARIO = _scenario()  # built once: both runs get the same generated Message-IDs
Captured = list[tuple[str, Any]]


def _plain(value: Any) -> Any:
    """Parameters as comparable values: the drivers' wrappers (sqlite3's memoryview, psycopg's
    Binary and Json) compare by identity, so they become their type's name and content."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, memoryview):
        return ("memoryview", bytes(value))
    if type(value).__module__.startswith("psycopg"):
        return (type(value).__name__, _plain(value.obj))
    return value


Scenario = Callable[[Store], list[Any]]


def _captured(
    url: str, monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> tuple[Captured, list[Any], list[Any]]:
    """``scenario`` on an empty database: what the driver received, what it answered, and
    every row stored."""
    store = Store.from_url(url)
    store.run_sync(lambda conn: metadata.drop_all(conn))
    store.run_sync(lambda conn: metadata.create_all(conn))
    counter = itertools.count()
    monkeypatch.setattr("secrets.token_hex", lambda n=16: f"{next(counter):0{2 * n}x}")
    sent: Captured = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        sent.append((statement, _plain(parameters)))

    sa.event.listen(store._writer, "before_cursor_execute", capture)
    answers = scenario(store)
    sa.event.remove(store._writer, "before_cursor_execute", capture)
    stored = store.run_sync(
        lambda conn: [
            [tuple(row) for row in conn.execute(sa.select(table)).all()]
            for table in metadata.sorted_tables
        ]
    )
    store._writer.dispose()
    store._reader.dispose()
    return sent, answers, stored


def _both_ways(
    url: str, monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> tuple[Captured, list[Any], list[Any]]:
    """``scenario`` run through ``conn.execute`` and through ``prepared``: both must send the
    same statements, answer the same and store the same; returns the prepared run's."""
    with monkeypatch.context() as reference:
        _through_sqlalchemy(reference)
        want_sent, want_answers, want_stored = _captured(url, reference, scenario)
    got_sent, got_answers, got_stored = _captured(url, monkeypatch, scenario)
    assert got_answers == want_answers
    assert got_stored == want_stored
    assert len(got_sent) == len(want_sent)
    for got, want in zip(got_sent, want_sent, strict=True):
        assert got == want
    return got_sent, got_answers, got_stored


def _intake(store: Store) -> list[Any]:
    """Every statement of the intake path (``SCENARIO``) through the router."""
    router = Router(store, SETTINGS, Clock())
    answers: list[Any] = []
    for contact in SCENARIO:
        try:
            answers.append(store.run_sync(lambda conn, c=contact: router.ingest(conn, c)))
        except IdempotencyKeyConflict as exc:
            answers.append(repr(exc))
    return answers


def _through_sqlalchemy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: every prepared statement run by ``conn.execute`` instead."""

    def run(conn: Connection, stmt: Any, params: Any) -> None:
        if params:
            conn.execute(stmt, params)

    def rows(conn: Connection, stmt: Any, params: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(stmt, params).all()]

    monkeypatch.setattr(prepared, "run", run)
    monkeypatch.setattr(prepared, "rows", rows)


def test_prepared_statements_send_what_sqlalchemy_sends_and_store_the_same(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got_sent, _, _ = _both_ways(db_url, monkeypatch, _intake)
    # The scenario did reach the statements it is about.
    assert sum("INSERT INTO requesters" in sql for sql, _ in got_sent) >= 6
    assert any("FROM identities" in sql for sql, _ in got_sent)
    assert any("UPDATE tickets SET" in sql for sql, _ in got_sent)


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    store = Store.from_url(db_url)
    store.run_sync(lambda c: metadata.create_all(c))
    with store._writer.connect() as connection, connection.begin():
        yield connection
    store._writer.dispose()
    store._reader.dispose()


def _raised(conn: Connection, call: Callable[[], Any]) -> BaseException:
    """What ``call`` raised, rolled back to a savepoint (PostgreSQL aborts the transaction)."""
    with pytest.raises(Exception) as info, conn.begin_nested():
        call()
    return info.value


def test_a_duplicate_key_raises_the_integrity_error_the_store_retries(conn: Connection) -> None:
    rid = prepared.value(conn, _NEW_REQUESTER, {"name": "A", "created_at": WHEN})
    row = {"requester_id": rid, "kind": "email", "value": "a@example.org"}
    prepared.run(conn, _NEW_IDENTITY, [row])
    ours = _raised(conn, lambda: prepared.run(conn, _NEW_IDENTITY, [row]))
    theirs = _raised(conn, lambda: conn.execute(_NEW_IDENTITY, [row]))
    assert type(ours) is type(theirs) is sa.exc.IntegrityError
    assert isinstance(ours, Exception) and _unique_violation(ours)
    # The cursor of the failed statement is not handed out again.
    assert prepared.value(conn, _NEW_REQUESTER, {"name": "B", "created_at": WHEN}) > rid


def test_a_value_its_column_refuses_raises_what_sqlalchemy_raises(conn: Connection) -> None:
    naive = {"name": "A", "created_at": datetime(2026, 11, 22, 15, 0)}
    ours = _raised(conn, lambda: prepared.value(conn, _NEW_REQUESTER, naive))
    theirs = _raised(conn, lambda: conn.execute(_NEW_REQUESTER, naive))
    assert type(ours) is type(theirs) is sa.exc.StatementError
    assert "naive datetime" in str(ours)


def test_a_statement_with_an_expanding_bind_is_refused(conn: Connection) -> None:
    stmt = sa.select(sa.literal(1)).where(sa.literal(1).in_(sa.bindparam("x", expanding=True)))
    with pytest.raises(ValueError, match="only plain binds"):
        prepared.rows(conn, stmt, {"x": [1]})


def test_statements_built_anew_do_not_grow_the_plans_past_the_bound(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared, "MAX_PLANS", 3)
    for n in range(10):
        stmt = sa.select(sa.bindparam("x", type_=sa.Integer) + n)  # a new statement each time
        assert prepared.value(conn, stmt, {"x": 1}) == 1 + n
    assert len(prepared._plans) <= 3


def test_value_without_a_row_raises_what_scalar_one_raises(conn: Connection) -> None:
    none = sa.select(sa.literal(1)).where(sa.bindparam("x", type_=sa.Integer) == 2)
    ours = _raised(conn, lambda: prepared.value(conn, none, {"x": 1}))
    theirs = _raised(conn, lambda: conn.execute(none, {"x": 1}).scalar_one())
    assert type(ours) is type(theirs) is sa.exc.NoResultFound


def test_an_error_while_fetching_rows_is_raised_as_sqlalchemy_raises_it(tmp_path: Any) -> None:
    """sqlite3 steps past the first row only in ``fetchall``: an error there must reach the
    store as SQLAlchemy's ``DBAPIError`` (which it retries and answers as temporary), not as
    the driver's own exception (which it would take for the job's own bug)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fetch.db'}")

    def second_row_fails(n: int) -> int:
        if n > 0:
            raise RuntimeError("disk went away")
        return n

    @sa.event.listens_for(engine, "connect")
    def _function(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.create_function("second_row_fails", 1, second_row_fails)

    stmt = sa.text("SELECT second_row_fails(n) FROM (SELECT 0 AS n UNION ALL SELECT 1)")
    with engine.connect() as connection:
        theirs = _raised(connection, lambda: connection.execute(stmt, {}).all())
        ours = _raised(connection, lambda: prepared.rows(connection, stmt, {}))
        assert type(ours) is type(theirs) is sa.exc.OperationalError
        # The cursor of the failed statement is not handed out again.
        assert prepared.value(connection, sa.text("SELECT 7"), {}) == 7
    engine.dispose()


def test_a_column_left_to_a_python_side_default_is_refused_not_stored_as_null(
    conn: Connection,
) -> None:
    """``conn.execute`` computes a Python-side ``default``/``onupdate`` in its execution
    context; a plan would send their binds as NULL, so such a statement is refused."""
    table = sa.Table(
        "prepared_defaults",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("made_by", sa.String(20), default=lambda: "spoc"),
        sa.Column("touched_by", sa.String(20), onupdate=lambda: "spoc"),
    )
    table.create(conn)
    with pytest.raises(ValueError, match="Python-side default"):
        prepared.run(conn, sa.insert(table), {"id": 1})
    conn.execute(sa.insert(table), {"id": 1})
    update = sa.update(table).where(table.c.id == sa.bindparam("key"))
    with pytest.raises(ValueError, match="Python-side default"):
        prepared.run(conn, update, {"key": 1, "made_by": "someone"})
    assert conn.execute(sa.select(table.c.made_by, table.c.touched_by)).one() == ("spoc", None)


def test_a_statement_on_a_connection_without_a_transaction_begins_one(db_url: str) -> None:
    """``conn.execute`` begins a transaction when none is open (SQLAlchemy's autobegin, which
    emits the store's BEGIN IMMEDIATE on SQLite); a prepared statement must too, or its write
    is committed on its own and a rollback leaves it in place."""
    store = Store.from_url(db_url)
    store.run_sync(lambda c: metadata.create_all(c))
    with store._writer.connect() as connection:
        prepared.value(connection, _NEW_REQUESTER, {"name": "rolled back", "created_at": WHEN})
        connection.rollback()
    requesters = metadata.tables["requesters"]
    kept = sa.select(sa.func.count()).where(requesters.c.name == "rolled back")
    assert store.run_sync(lambda c: c.execute(kept).scalar_one()) == 0
    store._writer.dispose()
    store._reader.dispose()


def test_a_statement_in_a_transaction_an_error_left_inactive_is_refused_as_sqlalchemy_does(
    conn: Connection,
) -> None:
    """A savepoint rolled back from inside a newer one (its RELEASE then fails) leaves the
    connection's transaction inactive: ``conn.execute`` refuses to go on until it is rolled
    back, and so must a prepared statement, rather than write in the wrong savepoint."""
    outer = conn.begin_nested()
    with pytest.warns(sa.exc.SAWarning), pytest.raises(sa.exc.OperationalError):
        with conn.begin_nested():
            outer.rollback()
    probe = sa.select(sa.literal(1))
    with pytest.raises(sa.exc.PendingRollbackError):
        conn.execute(probe)
    with pytest.raises(sa.exc.PendingRollbackError):
        prepared.rows(conn, probe, {})


def test_a_bind_whose_name_the_dialect_escapes_is_sent_under_the_escaped_name(
    conn: Connection,
) -> None:
    """PostgreSQL's pyformat SQL names a bind for column ``"a b"`` ``%(a_b)s``: the values
    must be sent under that name, as SQLAlchemy sends them."""
    table = sa.Table(
        "prepared_escaped",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a b", sa.String(20)),
    )
    table.create(conn)
    prepared.run(conn, sa.insert(table), {"id": 1, "a b": "spaced"})
    assert prepared.value(conn, sa.select(table.c["a b"]), {}) == "spaced"


def _dispatching(store: Store) -> list[Any]:
    """The dispatcher's side: claims (none due, some, after every lease ran out; PostgreSQL's
    SKIP LOCKED), a delivery, a retry, a dead row, and outcomes refused to a lost claim."""
    clock = Clock()
    outbox = Outbox(store, clock)
    skip_locked = store.is_postgres

    def queue(conn: Connection, n: int) -> None:
        enqueue(conn, "email.ack", {"to": f"u{n}@example.org"}, key=f"k{n}", now=clock())

    def claim(limit: int) -> list[Any]:
        return store.run_sync(
            lambda c: claim_due(
                c, now=clock(), limit=limit, lease_seconds=60, skip_locked=skip_locked
            )
        )

    async def outcomes(*claims: list[Any]) -> list[list[bool]]:
        await store.start()
        done = [
            [
                await outbox.done(items[0]),
                await outbox.failed(items[1], "451 later", clock.now + timedelta(minutes=5)),
                await outbox.failed(items[2], "550 no such user", None),
                await outbox.done(items[0]),  # recorded already: refused
            ]
            for items in claims
        ]
        await store.close()
        return done

    answers: list[Any] = [claim(20)]  # nothing due
    for n in range(5):
        store.run_sync(lambda c, n=n: queue(c, n))
    first = claim(3)
    answers += [first, claim(20)]  # then the two left
    clock.advance(minutes=2)  # every lease ran out
    answers.append(again := claim(20))
    answers += asyncio.run(outcomes(first, again))  # the first claim's are refused
    return answers


def test_the_outbox_claims_and_outcomes_send_what_sqlalchemy_sends(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, answers, stored = _both_ways(db_url, monkeypatch, _dispatching)
    # The scenario did reach what it is about: claims, a lease run out, fenced outcomes.
    assert [len(claimed) for claimed in answers[:4]] == [0, 3, 2, 5]
    assert answers[4:] == [[False] * 4, [True, True, True, False]]
    statuses = sorted(row[6] for row in stored[metadata.sorted_tables.index(outbox_table)])
    assert statuses == ["dead", "done", "pending", "pending", "pending"]
