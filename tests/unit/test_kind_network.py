"""`scalelab cluster down` removes the `kind` Docker network only when the kit's `cluster up` created it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from scalelab.platforms import kind


class FakeDocker:
    """Just enough of `docker network inspect|rm` to exercise the ownership record."""

    def __init__(self, net_id: str | None, users: int = 0) -> None:
        self.net_id, self.users, self.removed = net_id, users, False

    def __call__(self, argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        if argv[:3] == ["docker", "network", "inspect"]:
            if self.net_id is None:
                return subprocess.CompletedProcess(argv, 1, "", "no such network")
            out = str(self.users) if "len .Containers" in argv[4] else self.net_id
            return subprocess.CompletedProcess(argv, 0, out + "\n", "")
        if argv[:3] == ["docker", "network", "rm"]:
            self.removed, self.net_id = True, None
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError(argv)


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path))

    def install(fake: FakeDocker) -> FakeDocker:
        monkeypatch.setattr(kind._run, "run", fake)
        return fake

    return install


def test_network_the_kit_created_is_removed(docker: Any) -> None:
    fake = docker(FakeDocker("abc"))
    kind._record_network_owner(existed_before=False)
    kind._remove_owned_network(print)
    assert fake.removed


def test_network_that_was_there_before_is_left(docker: Any) -> None:
    fake = docker(FakeDocker("abc"))
    kind._record_network_owner(existed_before=True)
    kind._remove_owned_network(print)
    assert not fake.removed


def test_network_still_in_use_is_left_and_remembered(docker: Any, tmp_path: Path) -> None:
    fake = docker(FakeDocker("abc", users=2))
    kind._record_network_owner(existed_before=False)
    kind._remove_owned_network(print)
    assert not fake.removed and (tmp_path / kind.NETWORK_OWNER_FILE).exists()


def test_network_recreated_by_someone_else_is_left(docker: Any, tmp_path: Path) -> None:
    fake = docker(FakeDocker("abc"))
    kind._record_network_owner(existed_before=False)
    fake.net_id = "other"
    kind._remove_owned_network(print)
    assert not fake.removed and not (tmp_path / kind.NETWORK_OWNER_FILE).exists()
