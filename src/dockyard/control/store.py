"""SQLite store of the desired state: models, endpoint configs, endpoints and tags.

One file in the state directory. Specs are stored as the JSON the user sent (validated), so a
Describe returns exactly what was created. Names are unique case-insensitively, as in SageMaker.
Records are built from rows by column name; the schema is versioned with ``PRAGMA user_version``
and brought up to date by the steps in ``MIGRATIONS`` when a state dir is opened.

Every call is synchronous and cheap; the server makes them on one dedicated thread (``run``), so
the event loop that carries invocations never waits for SQLite. Only the control plane and the
reconciler use this; the invocation path never does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dockyard.control.plans import Deployment
from dockyard.control.status import EndpointStatus, check_transition

T = TypeVar("T")

# Schema version N is reached by running MIGRATIONS[N-1] on version N-1. Append, never edit: a
# state dir created by an older dockyard is brought forward step by step. Version 0 is a state
# dir from before versioning, whose tables are those of step 1 (hence IF NOT EXISTS there).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS resources (
        kind TEXT NOT NULL,
        name TEXT NOT NULL COLLATE NOCASE,
        arn TEXT NOT NULL,
        creation_time REAL NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE IF NOT EXISTS endpoints (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        arn TEXT NOT NULL,
        config_name TEXT NOT NULL,
        status TEXT NOT NULL,
        failure_reason TEXT,
        creation_time REAL NOT NULL,
        last_modified REAL NOT NULL,
        deployment TEXT NOT NULL,
        pending TEXT
    );
    CREATE TABLE IF NOT EXISTS tags (
        arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (arn, key)
    );
    """,
    # Asynchronous inference: each accepted InvokeEndpointAsync until its result or failure is
    # written (asyncinference/). The row is the request's durability: it exists before the 202.
    """
    CREATE TABLE IF NOT EXISTS async_requests (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL COLLATE NOCASE,
        received REAL NOT NULL,
        request TEXT NOT NULL
    );
    """,
    # Application Auto Scaling (control/scaling_store.py): scalable targets (one per variant),
    # their scaling policies (the configuration as sent) and the scaling activities.
    """
    CREATE TABLE IF NOT EXISTS scalable_targets (
        endpoint TEXT NOT NULL COLLATE NOCASE,
        variant TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        arn TEXT NOT NULL,
        min_capacity INTEGER NOT NULL,
        max_capacity INTEGER NOT NULL,
        suspended TEXT NOT NULL,
        creation_time REAL NOT NULL,
        PRIMARY KEY (endpoint, variant)
    );
    CREATE TABLE IF NOT EXISTS scaling_policies (
        endpoint TEXT NOT NULL COLLATE NOCASE,
        variant TEXT NOT NULL,
        name TEXT NOT NULL,
        arn TEXT NOT NULL,
        policy_type TEXT NOT NULL,
        configuration TEXT NOT NULL,
        alarms TEXT NOT NULL,
        creation_time REAL NOT NULL,
        PRIMARY KEY (endpoint, variant, name)
    );
    CREATE TABLE IF NOT EXISTS scaling_activities (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL COLLATE NOCASE,
        variant TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        description TEXT NOT NULL,
        cause TEXT NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        status_code TEXT NOT NULL,
        status_message TEXT NOT NULL,
        desired INTEGER NOT NULL
    );
    """,
]

MODEL = "model"
ENDPOINT_CONFIG = "endpoint-config"


class AlreadyExists(Exception):
    pass


@dataclass(frozen=True)
class ResourceSummary:
    """What List* returns of a model or an endpoint config (its spec is not read)."""

    kind: str
    name: str
    arn: str
    creation_time: float


@dataclass(frozen=True)
class Resource(ResourceSummary):
    """A model or an endpoint config, with the spec as created."""

    spec: dict[str, Any]


@dataclass(frozen=True)
class EndpointSummary:
    """What ListEndpoints returns, and what the reconciler looks at on every pass."""

    name: str
    arn: str
    config_name: str
    status: EndpointStatus
    creation_time: float
    last_modified: float


@dataclass(frozen=True)
class Endpoint(EndpointSummary):
    """An endpoint's desired state: the deployment it runs and, during an UpdateEndpoint, the
    one it is moving to (``pending``)."""

    failure_reason: str | None
    deployment: Deployment
    pending: Deployment | None


_SUMMARY_COLUMNS = "name, arn, config_name, status, creation_time, last_modified"


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit; every write is one statement or an explicit transaction.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        # The one thread every call is made on once the server runs (SQLite connections are not
        # to be shared between threads mid-transaction).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-store")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in step.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                # PRAGMA takes no parameters; ``number`` is an int of ours.
                self._db.execute(f"PRAGMA user_version = {number:d}")

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on the store's thread, awaited from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the record modules beside this one (``scaling_store.py``); on the
        store's thread only."""
        return self._db

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._db.close()

    # --- models and endpoint configs ---------------------------------------------------------

    def insert_resource(self, res: Resource, tags: list[dict[str, str]]) -> None:
        try:
            with self.transaction():
                self._db.execute(
                    "INSERT INTO resources (kind, name, arn, creation_time, spec) VALUES (?, ?, ?, ?, ?)",
                    (res.kind, res.name, res.arn, res.creation_time, json.dumps(res.spec)),
                )
                self._put_tags(res.arn, tags)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(res.name) from exc

    def get_resource(self, kind: str, name: str) -> Resource | None:
        row = self._db.execute("SELECT * FROM resources WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        if row is None:
            return None
        return Resource(row["kind"], row["name"], row["arn"], row["creation_time"], json.loads(row["spec"]))

    def list_resources(self, kind: str) -> list[ResourceSummary]:
        rows = self._db.execute("SELECT kind, name, arn, creation_time FROM resources WHERE kind = ?", (kind,))
        return [ResourceSummary(r["kind"], r["name"], r["arn"], r["creation_time"]) for r in rows]

    def delete_resource(self, kind: str, name: str) -> Resource | None:
        res = self.get_resource(kind, name)
        if res is not None:
            with self.transaction():
                self._db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))
                self._db.execute("DELETE FROM tags WHERE arn = ?", (res.arn,))
        return res

    # --- endpoints ---------------------------------------------------------------------------

    def insert_endpoint(self, ep: Endpoint, tags: list[dict[str, str]]) -> None:
        try:
            with self.transaction():
                self._db.execute(
                    "INSERT INTO endpoints (name, arn, config_name, status, failure_reason, creation_time,"
                    " last_modified, deployment, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ep.name, ep.arn, ep.config_name, ep.status.value, ep.failure_reason,
                        ep.creation_time, ep.last_modified, _json(ep.deployment), _json(ep.pending),
                    ),
                )
                self._put_tags(ep.arn, tags)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(ep.name) from exc

    def get_endpoint(self, name: str) -> Endpoint | None:
        row = self._db.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        pending = row["pending"]
        return Endpoint(
            **_summary_fields(row),
            failure_reason=row["failure_reason"],
            deployment=Deployment.from_json(json.loads(row["deployment"])),
            pending=Deployment.from_json(json.loads(pending)) if pending else None,
        )

    def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint in full (deployments parsed): for the few callers that need them all."""
        names = [r["name"] for r in self._db.execute("SELECT name FROM endpoints")]
        return [ep for name in names if (ep := self.get_endpoint(name)) is not None]

    def endpoint_summaries(self) -> list[EndpointSummary]:
        rows = self._db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM endpoints")
        return [EndpointSummary(**_summary_fields(r)) for r in rows]

    def update_endpoint(self, name: str, when_status: EndpointStatus, **fields: Any) -> bool:
        """Set the given columns of one endpoint if it still has status ``when_status``.

        The status condition keeps the reconciler's work from overwriting a DeleteEndpoint that
        arrived meanwhile; a new ``status`` must be one the transition table allows from it.
        Returns whether the endpoint changed.
        """
        if "status" in fields:
            check_transition(when_status, fields["status"])
            fields["status"] = EndpointStatus(fields["status"]).value
        for key in ("deployment", "pending"):
            if key in fields:
                fields[key] = _json(fields[key])
        assignments = ", ".join(f"{column} = ?" for column in fields)
        sql = f"UPDATE endpoints SET {assignments} WHERE name = ? AND status = ?"
        return self._db.execute(sql, [*fields.values(), name, when_status.value]).rowcount > 0

    def delete_endpoint(self, name: str) -> None:
        row = self._db.execute("SELECT arn FROM endpoints WHERE name = ?", (name,)).fetchone()
        if row is not None:
            with self.transaction():
                self._db.execute("DELETE FROM endpoints WHERE name = ?", (name,))
                self._db.execute("DELETE FROM tags WHERE arn = ?", (row["arn"],))
                # As Application Auto Scaling does: the endpoint's variants are deregistered
                # (their policies go with them; the activities stay as history).
                self._db.execute("DELETE FROM scalable_targets WHERE endpoint = ?", (name,))
                self._db.execute("DELETE FROM scaling_policies WHERE endpoint = ?", (name,))

    # --- asynchronous inference requests ----------------------------------------------------

    def insert_async_request(self, request_id: str, endpoint: str, received: float, request: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO async_requests (id, endpoint, received, request) VALUES (?, ?, ?, ?)",
            (request_id, endpoint, received, json.dumps(request)),
        )

    def async_requests(self) -> list[dict[str, Any]]:
        """Every accepted request not yet finished, oldest first."""
        rows = self._db.execute("SELECT request FROM async_requests ORDER BY received, rowid")
        return [json.loads(r["request"]) for r in rows]

    def delete_async_request(self, request_id: str) -> None:
        self._db.execute("DELETE FROM async_requests WHERE id = ?", (request_id,))

    # --- tags --------------------------------------------------------------------------------

    def add_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        with self.transaction():
            self._put_tags(arn, tags)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        rows = self._db.execute("SELECT key, value FROM tags WHERE arn = ? ORDER BY rowid", (arn,))
        return [{"Key": r["key"], "Value": r["value"]} for r in rows]

    def delete_tags(self, arn: str, keys: list[str]) -> None:
        self._db.executemany("DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys])

    def arn_exists(self, arn: str) -> bool:
        return bool(
            self._db.execute(
                "SELECT 1 FROM resources WHERE arn = ? UNION SELECT 1 FROM endpoints WHERE arn = ?", (arn, arn)
            ).fetchone()
        )

    def _put_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        self._db.executemany(
            "INSERT INTO tags VALUES (?, ?, ?) ON CONFLICT(arn, key) DO UPDATE SET value = excluded.value",
            [(arn, t["Key"], t.get("Value", "")) for t in tags],
        )

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` — BEGIN IMMEDIATE … COMMIT, or ROLLBACK on an exception."""
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _json(deployment: Deployment | None) -> str | None:
    return json.dumps(deployment.to_json()) if deployment is not None else None


def _summary_fields(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": row["name"], "arn": row["arn"], "config_name": row["config_name"],
        "status": EndpointStatus(row["status"]), "creation_time": row["creation_time"],
        "last_modified": row["last_modified"],
    }
