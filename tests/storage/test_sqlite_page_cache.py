"""Every SQLite connection (pooled, group commit, inline reader) has the same stated page cache
(``storage.engine.SQLITE_CACHE_KIB``; issue 12: the serving process's RSS against its speed)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from storage.engine import SQLITE_CACHE_KIB, _raw_connection, create_engine
from storage.reads import SQLiteReader


async def test_every_sqlite_connection_has_the_stated_page_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            pooled = (await connection.execute(text("PRAGMA cache_size"))).scalar_one()
    finally:
        await engine.dispose()
    raw = _raw_connection(str(path), busy_timeout=0)
    reader = SQLiteReader(str(path))
    try:
        inline = reader._connect().execute("PRAGMA cache_size").fetchone()
        assert (pooled, raw.execute("PRAGMA cache_size").fetchone(), inline) == (
            -SQLITE_CACHE_KIB, (-SQLITE_CACHE_KIB,), (-SQLITE_CACHE_KIB,)
        )  # fmt: skip
    finally:
        raw.close()
        await reader.close()
