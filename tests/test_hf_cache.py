"""A model id already in the local Hugging Face cache installs from there, in place, with no network."""

from __future__ import annotations

import shutil

import pytest

from invoke_core.demo import build_sd15_demo
from invoke_core.errors import ModelInstallError
from invoke_core.model_install import install_model
from invoke_core.model_records import ModelRegistry

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def hf_home(tmp_path, monkeypatch):
    """$HF_HOME with one repo laid out as huggingface_hub caches it (refs/main -> snapshots/<revision>)."""
    home = tmp_path / "hf"
    repo = home / "hub" / "models--studio--tiny-sd15"
    shutil.copytree(build_sd15_demo(tmp_path / "build"), repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: a download would fail
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo / "snapshots" / REVISION


def test_a_cached_repo_installs_offline_in_place(hf_home, tmp_path):
    registry = ModelRegistry(tmp_path / "root")
    record = install_model(registry, "studio/tiny-sd15")
    assert (record.id, record.family, record.kind, record.format) == ("tiny-sd15", "sd-1", "main", "diffusers")
    assert record.path == str(hf_home.resolve()) and record.source == "hf:studio/tiny-sd15"
    assert not (tmp_path / "root" / "models" / "hub").exists()  # nothing copied or downloaded


def test_a_repo_not_in_the_cache_is_one_clear_error_offline(hf_home, tmp_path):
    with pytest.raises(ModelInstallError, match="could not download 'studio/absent'"):
        install_model(ModelRegistry(tmp_path / "root"), "studio/absent")
