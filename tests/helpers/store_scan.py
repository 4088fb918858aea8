"""Scan every text, JSON and binary column of every table of the bot's store for given strings: the check
that an erasure or a bulk purge left nothing of a person behind, whatever table a later change adds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Text, select
from sqlalchemy.sql.type_api import TypeEngine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (every table on the metadata)
from storage.db import SessionFactory, unit_of_work


def _searchable(kind: TypeEngine[Any]) -> bool:
    impl = getattr(kind, "impl", kind)  # TypeDecorator → what it stores
    return isinstance(impl, String | Text | JSON | LargeBinary) or isinstance(kind, JSON)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def searchable_columns() -> list[tuple[str, str]]:
    """(table, column) of every column that can hold text, across SQLModel.metadata."""
    return [(table.name, column.name) for table in SQLModel.metadata.sorted_tables for column in table.columns
            if _searchable(column.type)]


async def find_in_store(sessions: SessionFactory, needles: Iterable[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every needle (case-insensitive) found anywhere in the store."""
    wanted = [n.lower() for n in needles if n]
    found: set[tuple[str, str, str]] = set()
    async with unit_of_work(sessions) as session:
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if _searchable(c.type)]
            if not columns:
                continue
            for row in (await session.exec(select(*columns))).all():  # type: ignore[call-overload]
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = _as_text(value).lower()
                    found.update((table.name, column.name, n) for n in wanted if n in text)
    return sorted(found)
