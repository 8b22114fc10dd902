"""The SageMaker container contract, in one place: paths, ports, labels, environment, timing.

Every runtime and ``dockyard check`` import these; ``serving/`` (which ships into images and
imports nothing else from dockyard) honours the same values on its own side.
Facts: ``reference/sagemaker-api.md`` (the hosting container contract).
"""

from __future__ import annotations

from collections.abc import Mapping

# Where the platform puts the unpacked model data (read-only) and, when separate, the code.
MODEL_DIR = "/opt/ml/model"
CODE_DIR = "/opt/ml/code"
# Where a multi-model container finds the models the platform unpacks for it, one directory each.
MULTI_MODEL_DIR = "/opt/ml/models"

# A container alone on its instance listens on 8080; side by side, each gets its own port.
DEFAULT_PORT = 8080
# Image labels: the container honours SAGEMAKER_BIND_TO_PORT / serves the multi-model API.
BIND_TO_PORT_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
MULTI_MODEL_LABEL = "com.amazonaws.sagemaker.capabilities.multi-models"

# The platform gives one GET /ping 2 s; dockyard retries, backing off between tries.
PING_TIMEOUT = 2.0
PING_FIRST_DELAY = 0.01
PING_MAX_DELAY = 0.2

# Stop: SIGTERM, then SIGKILL after this many seconds.
STOP_GRACE = 30.0


def container_environment(
    environment: Mapping[str, str],
    port: int,
    safe_ports: tuple[int, int],
    code_dir: str | None = None,
    multi_model: bool = False,
) -> dict[str, str]:
    """What the platform sets in a container: the model's ``Environment``, then the contract's
    variables, which win (a model cannot move its own port)."""
    env = {
        **environment,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_SAFE_PORT_RANGE": f"{safe_ports[0]}-{safe_ports[1]}",
    }
    if code_dir is not None:
        env["SAGEMAKER_SUBMIT_DIRECTORY"] = code_dir
    if multi_model:
        env["SAGEMAKER_MULTI_MODEL"] = "true"
    return env
