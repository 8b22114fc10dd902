"""The demo's embedded server (loopback only) runs containers as root when the container user
cannot read this Python — the README's first command must work for root with Python under /root —
and ``dockyard serve`` (which never falls back) says so at start."""

from __future__ import annotations

from pathlib import Path

from dockyard import server
from dockyard.cli import embedded
from dockyard.runtime import privileges
from dockyard.settings import Settings

NOBODY = privileges.ContainerUser("nobody", 65534, 65534)


def test_falls_back_to_root_only_when_the_user_cannot_read_python(monkeypatch, capsys):
    monkeypatch.setenv("DOCKYARD_CONTAINER_USER", "nobody")
    monkeypatch.setattr(privileges, "container_user", lambda setting: NOBODY)
    monkeypatch.setattr(privileges, "unreachable", lambda user, paths: Path("/root"))
    assert embedded._loopback_container_user() == {"DOCKYARD_CONTAINER_USER": "root"}
    assert "user nobody cannot read /root" in capsys.readouterr().err

    monkeypatch.setattr(privileges, "unreachable", lambda user, paths: None)
    assert embedded._loopback_container_user() == {}
    assert capsys.readouterr().err == ""


def test_a_server_not_running_as_root_changes_nothing(monkeypatch):
    monkeypatch.setattr(privileges, "container_user", lambda setting: None)
    assert embedded._loopback_container_user() == {}


def test_serve_warns_at_start_when_its_container_user_cannot_read_python(monkeypatch, caplog):
    monkeypatch.setattr(privileges, "container_user", lambda setting: NOBODY)
    monkeypatch.setattr(privileges, "unreachable", lambda user, paths: Path("/root"))
    assert server.container_user(Settings(container_user="nobody")) == NOBODY
    assert [r.getMessage() for r in caplog.records] == [
        "containers run as user nobody (DOCKYARD_CONTAINER_USER), who cannot read /root: endpoints on managed "
        "images will fail to start. Install Python and dockyard where nobody can read them, or set "
        "DOCKYARD_CONTAINER_USER=root to run containers as root."]

    caplog.clear()
    monkeypatch.setattr(privileges, "unreachable", lambda user, paths: None)
    assert server.container_user(Settings(container_user="nobody")) == NOBODY
    assert caplog.records == []
