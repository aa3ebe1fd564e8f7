"""Image build logic that needs no Docker: mode selection, wheelhouse check, rootfs trim, Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scalelab import images, versions

REPO = Path(__file__).resolve().parents[2]


def test_flag_beats_env_and_env_decides_without_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_registry_reachable", lambda timeout_s: pytest.fail("must not probe"))
    monkeypatch.setattr(images, "image_exists", lambda tag: pytest.fail("must not ask docker"))
    monkeypatch.setenv("SCALELAB_OFFLINE", "1")
    assert images.resolve_offline(None) is True
    assert images.resolve_offline(False) is False
    monkeypatch.setenv("SCALELAB_OFFLINE", "0")
    assert images.resolve_offline(None) is False
    assert images.resolve_offline(True) is True


def test_cache_dir_is_outside_the_repo_and_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCALELAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert images.cache_dir() == tmp_path / "scalelab"
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "elsewhere"))
    assert images.cache_dir() == tmp_path / "elsewhere"


def test_wheelhouse_is_complete_only_with_every_pinned_wheel(tmp_path: Path) -> None:
    cfg = images.ImageBuildConfig(offline=True, repo_root=REPO, cache=tmp_path)
    house = images.wheelhouse_dir(cfg)
    assert not images._wheelhouse_complete(cfg)
    house.mkdir(parents=True)
    pins = [line.split("==") for line in images._requirements(cfg)]
    for name, version in pins:
        (house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").touch()
    assert not images._wheelhouse_complete(cfg)  # build backend still missing
    (house / "setuptools-80.0.0-py3-none-any.whl").touch()
    (house / "wheel-0.45.0-py3-none-any.whl").touch()
    assert not images._wheelhouse_complete(cfg)  # pip still missing
    (house / "pip-26.0-py3-none-any.whl").touch()
    assert images._wheelhouse_complete(cfg)
    name, version = pins[0]
    (house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").unlink()
    assert not images._wheelhouse_complete(cfg)


def test_requirements_are_exact_pins_and_lean() -> None:
    reqs = images._requirements(images.ImageBuildConfig(offline=True, repo_root=REPO))
    assert reqs and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", r) for r in reqs)
    names = {r.split("==")[0].lower() for r in reqs}
    assert "uvicorn" in names
    assert not names & {"locust", "pandas", "kubernetes", "matplotlib", "pydantic", "uvloop", "httptools"}


def test_every_agent_requirement_is_pinned_by_hash() -> None:
    lines = [ln.split("#")[0].strip() for ln in (REPO / images.REQUIREMENTS_FILE).read_text().splitlines()]
    pins = [ln for ln in lines if ln]
    assert pins and all(re.fullmatch(r"\S+==\S+ --hash=sha256:[0-9a-f]{64}", ln) for ln in pins), pins


def test_trim_keeps_copyright_and_drops_docs(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc/python3"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("c")
    (doc / "changelog.gz").write_text("x")
    (tmp_path / "usr/share/man/man1").mkdir(parents=True)
    (tmp_path / "usr/share/man/man1/python3.1.gz").write_text("x")
    (tmp_path / "var/lib/apt/lists").mkdir(parents=True)
    (tmp_path / "var/lib/apt/lists/deb.debian.org_Packages").write_text("x")
    images._trim_rootfs(tmp_path)
    assert (doc / "copyright").exists() and not (doc / "changelog.gz").exists()
    assert not any((tmp_path / "usr/share/man").iterdir())
    assert (tmp_path / "var/lib/apt/lists").is_dir() and not any((tmp_path / "var/lib/apt/lists").iterdir())


def test_dockerfile_is_non_root_with_healthcheck_and_both_bases() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={versions.ONLINE_PYTHON_BASE}" in text
    assert re.search(r"^USER 6553[24]", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/readyz", text, re.M)
    assert re.search(r"^EXPOSE 8000$", text, re.M)
    assert "--no-deps --no-index" in text and "${PIP_INDEX}" in text and "--without-pip" in text
    assert ":latest" not in text
    for tag in (versions.AGENT_IMAGE, versions.LB_IMAGE, versions.BASE_IMAGE):
        assert not tag.endswith(":latest")


def test_lb_default_config_is_non_root_friendly() -> None:
    conf = images.LB_DEFAULT_NGINX_CONF
    assert "listen 8080;" in conf and "pid /tmp/nginx.pid;" in conf
    for key in ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"):
        assert re.search(rf"{key} /tmp/", conf)
    assert conf.count("{") == conf.count("}")


def test_missing_docker_engine_is_a_preflight_error_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.errors import PreflightError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PreflightError) as info:
        images.require_docker(timeout_s=5)
    assert "fix:" in info.value.render()


def test_auto_mode_goes_online_only_when_it_can(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALELAB_OFFLINE", raising=False)
    monkeypatch.setattr(images, "image_exists", lambda tag: False)
    monkeypatch.setattr(images, "_registry_reachable", lambda timeout_s: pytest.fail("must not probe"))
    assert images.resolve_offline(None, probe=False) is True
    monkeypatch.setattr(images, "_registry_reachable", lambda timeout_s: True)
    assert images.resolve_offline(None) is False
    monkeypatch.setattr(images, "_registry_reachable", lambda timeout_s: False)
    assert images.resolve_offline(None) is True
    monkeypatch.setattr(images, "image_exists", lambda tag: True)  # official bases already local
    assert images.resolve_offline(None, probe=False) is False
