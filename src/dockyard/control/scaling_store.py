"""Application Auto Scaling's records in the store: scalable targets, scaling policies, activities.

A scalable target is one production variant (``endpoint/<name>/variant/<variant>``), keyed by the
endpoint's name case-insensitively, like the endpoint itself. A policy keeps its configuration as
the user sent it (validated), so DescribeScalingPolicies returns exactly what was put. Activities
are the history DescribeScalingActivities lists; at most ``MAX_ACTIVITIES`` per variant are kept.
Every call runs on the store's thread (``Store.run``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from dockyard.control.store import Store

MAX_ACTIVITIES = 100  # per variant: the newest are kept


@dataclass(frozen=True)
class ScalableTarget:
    endpoint: str
    variant: str
    resource_id: str  # as registered: endpoint/<name>/variant/<variant>
    arn: str
    min_capacity: int
    max_capacity: int
    creation_time: float
    # SuspendedState as registered (DynamicScalingInSuspended, DynamicScalingOutSuspended, …).
    suspended: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ScalingPolicy:
    endpoint: str
    variant: str
    name: str
    arn: str
    policy_type: str
    # TargetTrackingScalingPolicyConfiguration as put.
    configuration: dict[str, Any]
    alarms: list[dict[str, str]]
    creation_time: float


@dataclass(frozen=True)
class ScalingActivity:
    id: str
    endpoint: str
    variant: str
    resource_id: str
    description: str
    cause: str
    start_time: float
    end_time: float | None
    status_code: str  # InProgress → Successful | Failed
    status_message: str
    desired: int


class ScalingStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def _db(self) -> sqlite3.Connection:
        return self.store.db

    # --- scalable targets --------------------------------------------------------------------

    def put_target(self, target: ScalableTarget) -> None:
        self._db.execute(
            "INSERT INTO scalable_targets (endpoint, variant, resource_id, arn, min_capacity, max_capacity, suspended,"
            " creation_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(endpoint, variant) DO UPDATE SET"
            " min_capacity = excluded.min_capacity, max_capacity = excluded.max_capacity, suspended = excluded.suspended",
            (target.endpoint, target.variant, target.resource_id, target.arn, target.min_capacity,
             target.max_capacity, json.dumps(target.suspended), target.creation_time),
        )

    def target(self, endpoint: str, variant: str) -> ScalableTarget | None:
        row = self._db.execute(
            "SELECT * FROM scalable_targets WHERE endpoint = ? AND variant = ?", (endpoint, variant)
        ).fetchone()
        return None if row is None else _target(row)

    def targets(self) -> list[ScalableTarget]:
        return [_target(r) for r in self._db.execute("SELECT * FROM scalable_targets ORDER BY creation_time")]

    def delete_target(self, endpoint: str, variant: str) -> None:
        """The target and its policies (Application Auto Scaling deletes them together)."""
        with self.store.transaction():
            for table in ("scalable_targets", "scaling_policies"):
                self._db.execute(f"DELETE FROM {table} WHERE endpoint = ? AND variant = ?", (endpoint, variant))

    # --- scaling policies --------------------------------------------------------------------

    def put_policy(self, policy: ScalingPolicy) -> None:
        """Create the policy, or replace the configuration of the one of that name."""
        self._db.execute(
            "INSERT INTO scaling_policies (endpoint, variant, name, arn, policy_type, configuration, alarms,"
            " creation_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(endpoint, variant, name) DO UPDATE SET"
            " policy_type = excluded.policy_type, configuration = excluded.configuration",
            (policy.endpoint, policy.variant, policy.name, policy.arn, policy.policy_type,
             json.dumps(policy.configuration), json.dumps(policy.alarms), policy.creation_time),
        )

    def policy(self, endpoint: str, variant: str, name: str) -> ScalingPolicy | None:
        row = self._db.execute(
            "SELECT * FROM scaling_policies WHERE endpoint = ? AND variant = ? AND name = ?", (endpoint, variant, name)
        ).fetchone()
        return None if row is None else _policy(row)

    def policies(self) -> list[ScalingPolicy]:
        return [_policy(r) for r in self._db.execute("SELECT * FROM scaling_policies ORDER BY creation_time")]

    def delete_policy(self, endpoint: str, variant: str, name: str) -> None:
        self._db.execute(
            "DELETE FROM scaling_policies WHERE endpoint = ? AND variant = ? AND name = ?", (endpoint, variant, name)
        )

    # --- scaling activities ------------------------------------------------------------------

    def add_activity(self, activity: ScalingActivity) -> None:
        with self.store.transaction():
            self._db.execute(
                "INSERT INTO scaling_activities (id, endpoint, variant, resource_id, description, cause, start_time,"
                " end_time, status_code, status_message, desired) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (activity.id, activity.endpoint, activity.variant, activity.resource_id, activity.description,
                 activity.cause, activity.start_time, activity.end_time, activity.status_code,
                 activity.status_message, activity.desired),
            )
            self._db.execute(
                "DELETE FROM scaling_activities WHERE endpoint = ? AND variant = ? AND id NOT IN (SELECT id FROM"
                " scaling_activities WHERE endpoint = ? AND variant = ? ORDER BY start_time DESC LIMIT ?)",
                (activity.endpoint, activity.variant, activity.endpoint, activity.variant, MAX_ACTIVITIES),
            )

    def finish_activity(self, activity_id: str, status_code: str, status_message: str, end_time: float) -> None:
        self._db.execute(
            "UPDATE scaling_activities SET status_code = ?, status_message = ?, end_time = ? WHERE id = ?",
            (status_code, status_message, end_time, activity_id),
        )

    def activities(self, in_progress_only: bool = False) -> list[ScalingActivity]:
        where = " WHERE status_code = 'InProgress'" if in_progress_only else ""
        rows = self._db.execute(f"SELECT * FROM scaling_activities{where} ORDER BY start_time")
        return [ScalingActivity(**{k: r[k] for k in r.keys()}) for r in rows]


def _target(row: sqlite3.Row) -> ScalableTarget:
    return ScalableTarget(
        endpoint=row["endpoint"], variant=row["variant"], resource_id=row["resource_id"], arn=row["arn"],
        min_capacity=row["min_capacity"], max_capacity=row["max_capacity"], creation_time=row["creation_time"],
        suspended=json.loads(row["suspended"]),
    )


def _policy(row: sqlite3.Row) -> ScalingPolicy:
    return ScalingPolicy(
        endpoint=row["endpoint"], variant=row["variant"], name=row["name"], arn=row["arn"],
        policy_type=row["policy_type"], configuration=json.loads(row["configuration"]),
        alarms=json.loads(row["alarms"]), creation_time=row["creation_time"],
    )
