"""What every control-plane operation shares: the store, the settings, a clock, and the
reconciler's doorbell."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from dockyard.control.store import Store
from dockyard.settings import Settings


@dataclass
class ControlContext:
    store: Store
    settings: Settings
    # Rung after every change of desired state so the reconciler acts at once.
    changed: Callable[[], None]
    clock: Callable[[], float] = field(default=time.time)
