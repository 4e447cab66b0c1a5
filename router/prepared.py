"""The intake path's statements, compiled once and run on the DBAPI cursor.

``conn.execute(stmt, params)`` spends ~35 us of Python per statement around the driver's
own few microseconds: a cache key, a compiled-cache look-up, an execution context, parameter
processing through generic layers, a result object (issue 12, docs/benchmarks.md "2d-writer").
A new ticket runs about eleven of them on the one writer thread. Here a statement is compiled
once per dialect (and per set of parameter names, which decides an INSERT's columns, exactly as
SQLAlchemy's own compile for that execution does), its bind and result processors are looked up
once, and each call does only what the statement needs: process the values, run the cursor,
fetch.

The SQL text and the parameters the driver receives are the ones ``conn.execute`` would send
(``tests/unit/router/test_prepared.py`` compares both on SQLite and PostgreSQL). The connection's
``before_cursor_execute``/``after_cursor_execute`` listeners still see every statement, and a
driver error is raised as SQLAlchemy would raise it (``IntegrityError``, ``DBAPIError`` with
``connection_invalidated``), through the connection's own error handling, so the store's
retry and reconnect rules are unchanged.

Only plain statements are taken: no expanding ``IN`` parameters (give each value a bind of its
own), every bind given by the caller or fixed in the statement, and no column left to a
Python-side ``default``/``onupdate`` (SQLAlchemy's execution computes those; server-side
defaults are fine). Statements are meant to be built once (module level, or memoised): a plan
is kept per statement object, and the plans are forgotten wholesale past ``MAX_PLANS`` so a
caller building them anew cannot grow memory.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.sql import ClauseElement

Params = dict[str, Any]
_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    positional: bool  # qmark/format (SQLite): a tuple in ``names`` order; else a dict
    names: tuple[str, ...]  # the binds' names, as the caller's parameters give them
    sent: tuple[str, ...]  # their names in the SQL (a dict's keys): some dialects escape them
    binds: tuple[_Processor, ...]  # per name
    fixed: Mapping[str, Any]  # binds the statement itself gives a value


MAX_PLANS = 1024
_plans: dict[tuple[int, str, tuple[str, ...], bool], tuple[ClauseElement, _Plan]] = {}
_results: dict[tuple[int, str, tuple[Any, ...]], tuple[ClauseElement, tuple[_Processor, ...]]] = {}


def _plan(stmt: ClauseElement, dialect: Dialect, keys: tuple[str, ...], many: bool) -> _Plan:
    cache_key = (id(stmt), dialect.name, keys, many)
    hit = _plans.get(cache_key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    # As SQLAlchemy compiles it for this execution: an INSERT's columns are the keys given,
    # and a single-row INSERT on PostgreSQL returns its primary key (a list of rows does not).
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys), for_executemany=many)
    if compiled.insert_prefetch or compiled.update_prefetch:
        # SQLAlchemy's execution context computes these; here their binds would go as NULL
        raise ValueError("a column's Python-side default or onupdate: run it with conn.execute")
    # The names in the SQL: ``binds`` also holds an anonymous bind's unresolved name
    # (``%(1234 status)s``), which SQLAlchemy does not send.
    names = (
        tuple(compiled.positiontup)
        if compiled.positional
        else tuple(dict.fromkeys(compiled.bind_names.values()))
    )
    fixed: dict[str, Any] = {}
    processors: list[_Processor] = []
    for name in names:
        bind = compiled.binds[name]
        if bind.expanding or bind.callable is not None:
            raise ValueError(f"{name!r}: only plain binds can be prepared")
        if name not in keys:
            if bind.required:
                raise ValueError(f"{name!r}: no value given")
            fixed[name] = bind.value
        processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
    escaped = compiled.escaped_bind_names or {}  # e.g. "a b" -> "a_b" in psycopg's %(a_b)s
    plan = _Plan(
        compiled.string,
        bool(compiled.positional),
        names,
        tuple(escaped.get(name, name) for name in names),
        tuple(processors),
        fixed,
    )
    if len(_plans) >= MAX_PLANS:
        _plans.clear()
        _results.clear()
    _plans[cache_key] = (stmt, plan)  # the statement is kept: its id stays its own
    return plan


def _values(plan: _Plan, params: Params) -> tuple[Any, ...] | dict[str, Any]:
    fixed = plan.fixed
    given = [params[name] if name in params else fixed[name] for name in plan.names]
    # zip without strict: one processor and one value per name, by construction
    values = [v if p is None or v is None else p(v) for p, v in zip(plan.binds, given)]  # noqa: B905
    if plan.positional:
        return tuple(values)
    return dict(zip(plan.sent, values))  # noqa: B905


def _cursor(conn: Connection, stmt: ClauseElement, params: Params | list[Params]) -> Any:
    many = isinstance(params, list)
    first = params[0] if isinstance(params, list) else params
    plan = _plan(stmt, conn.dialect, tuple(first), many)
    sql = plan.sql
    try:
        args: Any = (
            [_values(plan, row) for row in params]
            if isinstance(params, list)
            else _values(plan, params)
        )
    except Exception as exc:  # a value its type refuses: SQLAlchemy's StatementError
        conn._handle_dbapi_exception(exc, sql, params, None, None)
    _begin(conn)
    cursor = _reused_cursor(conn)
    try:
        # SQLAlchemy's own guard; the writer on SQLite has a listener ("begin"), so each
        # cursor event is asked for listeners before it is walked.
        listened = conn._has_events or conn.engine._has_events
        if listened and (before := conn.dispatch.before_cursor_execute):
            for fn in before:
                sql, args = fn(conn, cursor, sql, args, None, many)
        if many:
            conn.dialect.do_executemany(cursor, sql, args, None)
        else:
            conn.dialect.do_execute(cursor, sql, args, None)
        if listened and (after := conn.dispatch.after_cursor_execute):
            after(conn, cursor, sql, args, None, many)
    except BaseException as exc:
        _raise_as_sqlalchemy(conn, exc, cursor, sql, args)
    return cursor


def _begin(conn: Connection) -> None:
    """What ``conn.execute`` does first: refuse to run in a transaction an error left inactive
    (``PendingRollbackError``), and begin one when none is open (its autobegin, which emits the
    store's ``BEGIN IMMEDIATE`` on SQLite: without it, the statement commits on its own)."""
    transaction = conn._transaction
    if transaction is None:
        conn._autobegin()
    elif not transaction.is_active or (
        conn._nested_transaction is not None and not conn._nested_transaction.is_active
    ):
        conn._invalid_transaction()


def _raise_as_sqlalchemy(
    conn: Connection, exc: BaseException, cursor: Any, sql: str | None, args: Any
) -> NoReturn:
    """After the driver or a listener failed: the next statement gets a fresh cursor, and a
    driver error is raised as SQLAlchemy raises it (a ``DBAPIError``, which the store retries
    and answers as temporary; a lost connection invalidated). A listener's own error is raised
    as it is (as SQLAlchemy does)."""
    _drop_cursor(conn, cursor)
    if isinstance(exc, Exception) and not isinstance(exc, conn.dialect.loaded_dbapi.Error):
        raise exc
    conn._handle_dbapi_exception(exc, sql, args, cursor, None)
    raise exc  # not reached: the line above raises


# One cursor per DBAPI connection, kept in the connection's ``info`` (which SQLAlchemy clears
# when the connection is replaced): creating one per statement was a tenth of the work on
# psycopg. Every statement's rows are fetched at once, so the next statement finds it free.
_CURSOR = "spoc.prepared.cursor"


def _reused_cursor(conn: Connection) -> Any:
    info = conn.connection.info
    cursor = info.get(_CURSOR)
    if cursor is None:
        cursor = info[_CURSOR] = conn.connection.cursor()
    return cursor


def _drop_cursor(conn: Connection, cursor: Any) -> None:
    """After an error: the next statement gets a fresh cursor."""
    with contextlib.suppress(Exception):  # the error being handled is the one that matters
        conn.connection.info.pop(_CURSOR, None)
        cursor.close()


def run(conn: Connection, stmt: ClauseElement, params: Params | list[Params]) -> None:
    """Execute ``stmt`` once, or once per row when ``params`` is a list of rows."""
    if isinstance(params, list):
        if not params:
            return
        if len(params) == 1:
            params = params[0]  # what ``conn.execute`` does with a list of one
    cursor = _cursor(conn, stmt, params)
    if cursor.description is not None:  # PostgreSQL's implicit RETURNING of a one-row INSERT
        _fetch_all(conn, cursor)


def rows(conn: Connection, stmt: ClauseElement, params: Params) -> list[tuple[Any, ...]]:
    """Every row ``stmt`` returns, its values through the columns' result processors."""
    cursor = _cursor(conn, stmt, params)
    fetched = _fetch_all(conn, cursor)  # all of them: the cursor is free for the next statement
    if not fetched:
        return []
    processors = _result_processors(stmt, conn.dialect, cursor.description)
    if not any(processors):
        return [tuple(row) for row in fetched]
    return [
        tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
        for row in fetched
    ]


def _fetch_all(conn: Connection, cursor: Any) -> list[Any]:
    """``cursor.fetchall()``; an error raised as SQLAlchemy raises one while fetching (sqlite3
    steps past the first row only here)."""
    try:
        fetched: list[Any] = cursor.fetchall()
    except BaseException as exc:
        _raise_as_sqlalchemy(conn, exc, cursor, None, None)
    return fetched


def first(conn: Connection, stmt: ClauseElement, params: Params) -> tuple[Any, ...] | None:
    """The first row ``stmt`` returns, or None."""
    found = rows(conn, stmt, params)
    return found[0] if found else None


def value(conn: Connection, stmt: ClauseElement, params: Params) -> Any:
    """The first column of the one row ``stmt`` returns (an INSERT's RETURNING id, a count)."""
    found = rows(conn, stmt, params)
    if not found:  # the errors of ``Result.scalar_one``, which this replaces
        raise NoResultFound("No row was found when one was required")
    if len(found) > 1:
        raise MultipleResultsFound("Multiple rows were found when exactly one was required")
    return found[0][0]


_type_code = operator.itemgetter(1)  # a DBAPI description's type_code (None on sqlite3)


def _result_processors(
    stmt: ClauseElement, dialect: Dialect, description: Sequence[Any]
) -> tuple[_Processor, ...]:
    coltypes = tuple(map(_type_code, description))
    cache_key = (id(stmt), dialect.name, coltypes)
    hit = _results.get(cache_key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    columns = list(getattr(stmt, "exported_columns", ()))  # a SELECT's, or RETURNING's
    found: tuple[_Processor, ...] = (None,) * len(coltypes)
    if columns:  # a text() statement has none: its values come as the driver gives them
        found = tuple(
            col.type.dialect_impl(dialect).result_processor(dialect, coltype)
            for col, coltype in zip(columns, coltypes, strict=True)
        )
    _results[cache_key] = (stmt, found)
    return found
