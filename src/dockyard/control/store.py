"""SQLite store of the desired state: models, endpoint configs, endpoints and tags.

One file in the state directory. Specs are stored as the JSON the user sent (validated), so a
Describe returns exactly what was created. Names are unique case-insensitively, as in SageMaker.
Only the control plane and the reconciler use this; the invocation path never does.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
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
"""

MODEL = "model"
ENDPOINT_CONFIG = "endpoint-config"


class AlreadyExists(Exception):
    pass


@dataclass(frozen=True)
class Resource:
    """A model or an endpoint config: its name, ARN, creation time and the spec as created."""

    kind: str
    name: str
    arn: str
    creation_time: float
    spec: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's desired state. ``deployment`` is a self-contained snapshot of its config and
    models (SageMaker lets users delete both while the endpoint keeps running); ``pending`` is the
    snapshot an UpdateEndpoint is moving to."""

    name: str
    arn: str
    config_name: str
    status: str
    failure_reason: str | None
    creation_time: float
    last_modified: float
    deployment: dict[str, Any]
    pending: dict[str, Any] | None


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit; every write is one statement or an explicit transaction.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- models and endpoint configs ---------------------------------------------------------

    def insert_resource(self, res: Resource, tags: list[dict[str, str]]) -> None:
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO resources VALUES (?, ?, ?, ?, ?)",
                    (res.kind, res.name, res.arn, res.creation_time, json.dumps(res.spec)),
                )
                self._put_tags(res.arn, tags)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(res.name) from exc

    def get_resource(self, kind: str, name: str) -> Resource | None:
        row = self._db.execute(
            "SELECT kind, name, arn, creation_time, spec FROM resources WHERE kind = ? AND name = ?",
            (kind, name),
        ).fetchone()
        return _resource(row) if row else None

    def list_resources(self, kind: str) -> list[Resource]:
        rows = self._db.execute(
            "SELECT kind, name, arn, creation_time, spec FROM resources WHERE kind = ?", (kind,)
        )
        return [_resource(r) for r in rows]

    def delete_resource(self, kind: str, name: str) -> Resource | None:
        res = self.get_resource(kind, name)
        if res is not None:
            with self._transaction():
                self._db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))
                self._db.execute("DELETE FROM tags WHERE arn = ?", (res.arn,))
        return res

    # --- endpoints ---------------------------------------------------------------------------

    def insert_endpoint(self, ep: Endpoint, tags: list[dict[str, str]]) -> None:
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ep.name, ep.arn, ep.config_name, ep.status, ep.failure_reason,
                        ep.creation_time, ep.last_modified, json.dumps(ep.deployment),
                        json.dumps(ep.pending) if ep.pending is not None else None,
                    ),
                )
                self._put_tags(ep.arn, tags)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(ep.name) from exc

    def get_endpoint(self, name: str) -> Endpoint | None:
        row = self._db.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE name = ?", (name,)).fetchone()
        return _endpoint(row) if row else None

    def list_endpoints(self) -> list[Endpoint]:
        return [_endpoint(r) for r in self._db.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints")]

    def update_endpoint(self, name: str, when_status: str | None = None, **fields: Any) -> bool:
        """Set the given columns of one endpoint (``deployment``/``pending`` as dicts).

        With ``when_status``, only if the endpoint still has that status: the reconciler's work
        must not overwrite a DeleteEndpoint that arrived meanwhile. Returns whether it changed.
        """
        for key in ("deployment", "pending"):
            if key in fields and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        assignments = ", ".join(f"{column} = ?" for column in fields)
        sql, args = f"UPDATE endpoints SET {assignments} WHERE name = ?", [*fields.values(), name]
        if when_status is not None:
            sql += " AND status = ?"
            args.append(when_status)
        return self._db.execute(sql, args).rowcount > 0

    def delete_endpoint(self, name: str) -> None:
        ep = self.get_endpoint(name)
        if ep is not None:
            with self._transaction():
                self._db.execute("DELETE FROM endpoints WHERE name = ?", (name,))
                self._db.execute("DELETE FROM tags WHERE arn = ?", (ep.arn,))

    # --- tags --------------------------------------------------------------------------------

    def add_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        with self._transaction():
            self._put_tags(arn, tags)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        rows = self._db.execute("SELECT key, value FROM tags WHERE arn = ? ORDER BY rowid", (arn,))
        return [{"Key": k, "Value": v} for k, v in rows]

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

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


_ENDPOINT_COLUMNS = (
    "name, arn, config_name, status, failure_reason, creation_time, last_modified, deployment, pending"
)


def _resource(row: tuple) -> Resource:
    kind, name, arn, created, spec = row
    return Resource(kind, name, arn, created, json.loads(spec))


def _endpoint(row: tuple) -> Endpoint:
    *head, deployment, pending = row
    return Endpoint(*head, json.loads(deployment), json.loads(pending) if pending else None)

