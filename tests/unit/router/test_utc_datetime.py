"""``UTCDateTime``'s one-step bind processor gives the driver what SQLAlchemy's two steps
(``process_bind_param``, then the dialect's ``DATETIME``) give it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from router.schema import UTCDateTime

DIALECTS = [sqlite.dialect(), postgresql.dialect(driver="psycopg")]  # type: ignore[no-untyped-call]
OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
# Far enough inside 1..9999 that a time zone's offset cannot leave the range.
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
)


def _sqlalchemy_way(dialect: Dialect) -> Any:
    """What ``TypeDecorator.bind_processor`` builds (the two steps)."""
    return sa.TypeDecorator.bind_processor(UTCDateTime().dialect_impl(dialect), dialect)


def _ours(dialect: Dialect) -> Any:
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@given(values=st.lists(st.one_of(AWARE, st.none()), min_size=1, max_size=5))
def test_one_step_gives_what_the_two_steps_give(dialect: Dialect, values: list[Any]) -> None:
    ours, reference = _ours(dialect), _sqlalchemy_way(dialect)
    for value in [*values, *values]:  # the second time, the remembered value is given back
        assert ours(value) == reference(value)
        assert type(ours(value)) is type(reference(value))


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_the_same_object_is_converted_again_after_another_one(dialect: Dialect) -> None:
    ours = _ours(dialect)
    first = datetime(2026, 12, 6, 23, 0, 0, 5, tzinfo=UTC)
    second = first + timedelta(hours=1)
    assert [ours(first), ours(second), ours(first)] == [
        _sqlalchemy_way(dialect)(v) for v in (first, second, first)
    ]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_naive_datetime_is_refused_as_before(dialect: Dialect) -> None:
    naive = datetime(2026, 12, 6, 23, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        _sqlalchemy_way(dialect)(naive)
    with pytest.raises(ValueError, match="naive datetime"):
        _ours(dialect)(naive)


def test_another_sqlite_storage_format_goes_sqlalchemys_way() -> None:
    class Seconds(UTCDateTime):
        impl = sqlite.DATETIME(truncate_microseconds=True)  # type: ignore[assignment]

    dialect = sqlite.dialect()  # type: ignore[no-untyped-call]
    when = datetime(2026, 12, 6, 23, 0, 0, 5, tzinfo=UTC)
    assert Seconds().dialect_impl(dialect).bind_processor(dialect)(when) == "2026-12-06 23:00:00"
