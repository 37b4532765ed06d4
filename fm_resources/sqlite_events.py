"""Dagster's SQLite event log with its SQLAlchemy engines and connections kept for the process.

Dagster's `SqliteEventLogStorage._connect` creates a new SQLAlchemy engine for every statement it runs (one per
event stored, and per query: a video's run stores about 120 events and asks `has_dynamic_partition` about 100
times), opens a new SQLite connection with it and disposes of both afterwards; `has_table` does the same about
140 times a run. SQLAlchemy caches compiled statements per engine, so each statement was compiled again, and
opening a connection (reading the schema, mapping the WAL index) and closing the last one of a WAL database
(which checkpoints and deletes the WAL) cost about 1 ms each: about 600 times a run. Here one engine per database
file (the index shard and the shards of the runs being written, the last few) lives as long as the storage, with
one connection kept open in it, idle between uses; tables found once are remembered (`has_table`: tables are
added by migrations, never dropped while an instance is open).

What other processes see is unchanged: every use is its own committed transaction (the connection holds no lock
between uses), in WAL mode as before. A run shard is checkpointed after each use (PASSIVE: it waits for nobody), so
its database file changes as each event is stored, which is what Dagster's UI watches to show a run live (the
watchdog on `<run_id>.db` of `SqliteEventLogStorage.watch`); before, closing the connection did that. `fm`'s own
processes use this class (fm_resources/instance.py: `dagster_instance`); the instance's dagster.yaml and other
processes reading it (`fm ui`, the daemon) keep Dagster's class. A forked child drops the parent's connections
without closing them and opens its own.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

MAX_ENGINES = 8  # the index shard and the shards of the runs written last

_LIVE: weakref.WeakSet = weakref.WeakSet()  # the storages of this process, for a forked child to drop
_PARENTS: list[Engine] = []  # in a forked child: the parent's engines, never closed or used here


class EngineKeepingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose `_connect` reuses one engine per shard (see the module's docstring)."""

    _engines: OrderedDict[str, Engine]
    _tables: set[str]

    @classmethod
    def adopt(cls, storage) -> None:
        """Turn an instance's own SqliteEventLogStorage (exactly that class) into this one, in place; any other
        event log storage (Postgres, another subclass) is left as it is."""
        if type(storage) is SqliteEventLogStorage:
            storage.__class__ = cls
            storage._engines = OrderedDict()
            storage._tables = set()
            _LIVE.add(storage)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            # one connection kept (`_connect` holds the storage's lock while it is in use; only a new shard's
            # set-up opens more at once, closed after); check_same_thread off because the lock, not the thread,
            # makes its use exclusive
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                   max_overflow=4, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                                 "check_same_thread": False})
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
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:  # the run's file changes as its events come (see the docstring)
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables.add(table_name)
        return found

    def release(self) -> None:
        """Close the connections kept open (the engines stay; the next use opens one again): the files are then
        as Dagster's own class leaves them between statements (the WAL checkpointed and gone)."""
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()

    def _drop_engines(self) -> None:
        while self._engines:
            self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        with self._db_lock:  # no connection left open on the run shards it deletes
            self._drop_engines()
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._drop_engines()
        super().dispose()


def _after_fork_in_child() -> None:
    """The parent's open connections stay the parent's: not used here, and not closed either (closing an SQLite
    connection may checkpoint or delete a WAL the parent is using), so they are held until the child exits."""
    for storage in list(_LIVE):
        _PARENTS.extend(storage._engines.values())
        storage._engines = OrderedDict()
        storage._db_lock = threading.Lock()  # held by another thread of the parent at the fork, maybe


os.register_at_fork(after_in_child=_after_fork_in_child)
