"""Dagster's SQLite event log with its SQLAlchemy engines kept for the process.

Dagster's `SqliteEventLogStorage._connect` creates a new SQLAlchemy engine for every statement it runs (one per
event stored, and per query: a video's run stores about 120 events and asks `has_dynamic_partition` about 100
times) and disposes of it afterwards. SQLAlchemy caches compiled statements per engine, so each of those
statements was compiled again, and the engine built again. Here one engine per database file (the index shard and
the shards of the runs being written, the last few) lives as long as the storage. Connections are still opened
and closed for each use (NullPool, as Dagster does): the files, their locks, WAL checkpoints and what other
processes see are unchanged. `fm`'s own processes use it (fm_resources/instance.py: `dagster_instance`); the
instance's dagster.yaml and other processes reading it (`fm ui`, the daemon) keep Dagster's class.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

MAX_ENGINES = 8  # the index shard and the shards of the runs written last


class EngineKeepingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose `_connect` reuses one engine per shard (see the module's docstring)."""

    _engines: OrderedDict[str, Engine]

    @classmethod
    def adopt(cls, storage) -> None:
        """Turn an instance's own SqliteEventLogStorage (exactly that class) into this one, in place; any other
        event log storage (Postgres, another subclass) is left as it is."""
        if type(storage) is SqliteEventLogStorage:
            storage.__class__ = cls
            storage._engines = OrderedDict()

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine  # the most recently used last
        while len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()
