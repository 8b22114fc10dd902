"""The store: records by column name, schema migrations of an existing state dir, and the
status transition table it enforces."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dockyard.control import store as store_module
from dockyard.control.status import EndpointStatus, IllegalTransition
from dockyard.control.store import MIGRATIONS, Store

# A state dir written by dockyard before the schema was versioned (user_version 0).
OLD_SCHEMA = """
CREATE TABLE resources (kind TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, arn TEXT NOT NULL,
    creation_time REAL NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE endpoints (name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, config_name TEXT NOT NULL,
    status TEXT NOT NULL, failure_reason TEXT, creation_time REAL NOT NULL, last_modified REAL NOT NULL,
    deployment TEXT NOT NULL, pending TEXT);
CREATE TABLE tags (arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
"""
MODEL = {"PrimaryContainer": {"Image": "img:1"}}
CONFIG = {"ProductionVariants": [{"VariantName": "v1", "ModelName": "m", "InstanceType": "ml.m5.large",
                                  "InitialInstanceCount": 2}]}
DEPLOYMENT = {"EndpointConfigName": "c", "EndpointConfig": CONFIG, "Models": {"m": MODEL},
              "Variants": {"v1": {"DesiredWeight": 0.5, "DesiredInstanceCount": 2}}}


def old_state_dir(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO endpoints VALUES ('Ep', 'arn:ep', 'c', 'InService', NULL, 1.0, 2.0, ?, NULL)",
               (json.dumps(DEPLOYMENT),))
    db.execute("INSERT INTO resources VALUES ('model', 'm', 'arn:m', 1.0, ?)", (json.dumps(MODEL),))
    db.commit()
    db.close()
    return path


def test_an_old_state_dir_opens_and_its_records_read_by_name(tmp_path: Path) -> None:
    store = Store(old_state_dir(tmp_path / "dockyard.db"))
    assert store.version == len(MIGRATIONS)
    ep = store.get_endpoint("ep")
    assert ep is not None and ep.name == "Ep" and ep.status is EndpointStatus.IN_SERVICE
    assert (ep.deployment.config_name, ep.deployment.variants["v1"].weight) == ("c", 0.5)
    plan = ep.deployment.plans[0]
    assert (plan.name, plan.instance_count, plan.mode, plan.containers[0].hostname) == ("v1", 2, "Single", "primary")
    assert ep.deployment.to_json() == DEPLOYMENT  # written back exactly as read
    assert [r.name for r in store.list_resources("model")] == ["m"]
    store.close()


def test_a_new_migration_step_adds_a_column_to_an_existing_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "dockyard.db"
    Store(path).close()
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, "ALTER TABLE endpoints ADD COLUMN note TEXT"])
    store = Store(path)
    assert store.version == len(MIGRATIONS) + 1
    columns = [row["name"] for row in store._db.execute("PRAGMA table_info(endpoints)")]
    assert columns[-1] == "note"
    store.close()
    Store(path).close()  # already migrated: the step is not run twice (it would fail)


def test_status_changes_follow_the_transition_table(tmp_path: Path) -> None:
    store = Store(old_state_dir(tmp_path / "dockyard.db"))
    with pytest.raises(IllegalTransition, match="from InService to Creating"):
        store.update_endpoint("ep", EndpointStatus.IN_SERVICE, status=EndpointStatus.CREATING)
    # The status condition: a change that raced with another one does not apply.
    assert not store.update_endpoint("ep", EndpointStatus.UPDATING, status=EndpointStatus.IN_SERVICE)
    assert store.update_endpoint("ep", EndpointStatus.IN_SERVICE, status=EndpointStatus.DELETING)
    ep = store.get_endpoint("ep")
    assert ep is not None and ep.status is EndpointStatus.DELETING
    store.close()
