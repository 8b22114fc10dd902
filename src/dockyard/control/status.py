"""The endpoint status machine: SageMaker's status names and the transitions dockyard makes.

The control plane moves an endpoint into a status that asks for work (Creating, Updating,
Deleting); the reconciler moves it on to where the work ended (InService, Failed, gone). Every
status change goes through ``check_transition``, so a change the table does not allow is a bug
that shows at once instead of an endpoint in a state nothing handles.
"""

from __future__ import annotations

from enum import Enum


class EndpointStatus(str, Enum):
    # The str mixin: a status compares equal to, and serialises as, its SageMaker name.
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    OUT_OF_SERVICE = "OutOfService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"

    def __str__(self) -> str:
        return self.value

    @property
    def in_progress(self) -> bool:
        """Whether work is under way (SageMaker refuses an update then: "in-progress endpoint")."""
        return self in _IN_PROGRESS

    @property
    def serving(self) -> bool:
        """Whether the endpoint's deployed variants take traffic in this status."""
        return self in (EndpointStatus.IN_SERVICE, EndpointStatus.UPDATING)


_IN_PROGRESS = frozenset({
    EndpointStatus.CREATING, EndpointStatus.UPDATING, EndpointStatus.DELETING,
    EndpointStatus.SYSTEM_UPDATING, EndpointStatus.ROLLING_BACK,
})

# Every status dockyard sets, and where it may go from there. DeleteEndpoint is allowed from any
# status (SageMaker's rule), so Deleting is reachable from all; Deleting ends with the row gone.
TRANSITIONS: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    EndpointStatus.CREATING: frozenset({EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}),
    # InService stays InService while instances are replaced, however long that takes.
    EndpointStatus.IN_SERVICE: frozenset({EndpointStatus.UPDATING, EndpointStatus.DELETING}),
    # Updating → InService both when the update is done and when it rolled back.
    EndpointStatus.UPDATING: frozenset({EndpointStatus.IN_SERVICE, EndpointStatus.DELETING}),
    EndpointStatus.FAILED: frozenset({EndpointStatus.DELETING}),
    EndpointStatus.DELETING: frozenset(),
}


class IllegalTransition(Exception):
    pass


def check_transition(current: EndpointStatus, new: EndpointStatus) -> None:
    """Raise IllegalTransition unless the table allows ``current`` → ``new``."""
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"an endpoint cannot go from {current} to {new}")


def can_update(status: EndpointStatus) -> bool:
    return EndpointStatus.UPDATING in TRANSITIONS.get(status, frozenset())
