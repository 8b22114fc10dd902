"""``dockyard serve --runtime ray`` when it cannot run: one line saying why, no traceback, no wait."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from needs import require_ray

from dockyard.runtime.ports import free_port

# Runs the CLI with `import ray` made impossible, as on a machine without it.
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from dockyard.cli.main import main; main()"


def serve(tmp_path: Path, *args: str, code: str = "from dockyard.cli.main import main; main()") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, "serve", "--runtime", "ray", "--state-dir", str(tmp_path / "state"),
                           "--port", str(free_port()), *args], capture_output=True, text=True, timeout=120)


def test_without_ray_installed_it_says_what_to_install(tmp_path: Path) -> None:
    done = serve(tmp_path, code=WITHOUT_RAY)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "dockyard serve --runtime ray: Ray is not installed here: pip install 'dockyard[ray]'"
    assert "Traceback" not in done.stderr


def test_a_head_address_where_nothing_answers_is_named(tmp_path: Path) -> None:
    require_ray()
    address = f"127.0.0.1:{free_port()}"
    done = serve(tmp_path, "--ray-address", address)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dockyard serve --runtime ray: cannot join the Ray cluster at {address}: nothing answers at {address}")
    assert "Traceback" not in done.stderr
