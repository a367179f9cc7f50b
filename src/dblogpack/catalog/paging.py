"""Paged listings: one page of a query's rows and how many rows the query selects in all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, func, select


def page(
    conn: Connection, query: Select[Any], order_by: tuple[ColumnElement[Any], ...],
    offset: int, limit: int,
) -> tuple[list[Row[Any]], int]:
    """The rows of `query` from `offset` (at most `limit`) in `order_by` order, and their total."""
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(*order_by).offset(offset).limit(limit))
    return list(rows), int(total)
