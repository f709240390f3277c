"""``frontends.data``: released files from the NNLOOM_DATA mirror or the cache, checked by
hash; without either and without network, one error saying how to get them."""

import hashlib
import re

import pytest

from frontends import data
from frontends.data import DataUnavailable

BLOB = b"released table bytes"
SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """One registered file ``t/a.npy``, an empty cache and a download that fails as it does
    without network (counted)."""
    calls = []

    def retrieve(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("Failed to resolve 'example.org'")

    monkeypatch.setattr(data, "REGISTRY", {"t/a.npy": ("https://example.org/a.npy", SHA)})
    monkeypatch.setattr(data, "_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(data, "_offline", [])
    monkeypatch.setattr("pooch.retrieve", retrieve)
    monkeypatch.delenv(data.ENV, raising=False)
    return calls


def test_mirror_file_is_used_when_its_hash_matches(fake, monkeypatch, tmp_path):
    (tmp_path / "m" / "t").mkdir(parents=True)
    (tmp_path / "m" / "t" / "a.npy").write_bytes(BLOB)
    monkeypatch.setenv(data.ENV, str(tmp_path / "m"))
    assert data.fetch("t/a.npy") == tmp_path / "m" / "t" / "a.npy"
    assert fake == []


def test_mirror_file_with_another_hash_is_refused(fake, monkeypatch, tmp_path):
    (tmp_path / "m" / "t").mkdir(parents=True)
    (tmp_path / "m" / "t" / "a.npy").write_bytes(BLOB + b"!")
    monkeypatch.setenv(data.ENV, str(tmp_path / "m"))
    with pytest.raises(DataUnavailable, match=r"a\.npy: its SHA-256 differs from the registered"):
        data.fetch("t/a.npy")


def test_cached_file_is_used_without_download(fake, tmp_path):
    (tmp_path / "cache" / "t").mkdir(parents=True)
    (tmp_path / "cache" / "t" / "a.npy").write_bytes(BLOB)
    assert data.fetch("t/a.npy") == tmp_path / "cache" / "t" / "a.npy"
    assert fake == []


def test_no_mirror_no_network_says_how_and_tries_once(fake):
    for _ in range(2):
        with pytest.raises(DataUnavailable) as err:
            data.fetch("t/a.npy")
        msg = str(err.value)
        assert msg.startswith("t/a.npy: NNLOOM_DATA unset") and "no network" in msg
        assert "set NNLOOM_DATA to a local mirror" in msg and "\n" not in msg
    assert len(fake) == 1


def test_registry_pins_each_file_to_a_commit_and_a_hash():
    assert len(data.REGISTRY) == 4 + 10 + 15
    for name, (url, sha) in data.REGISTRY.items():
        assert re.fullmatch(r"[0-9a-f]{64}", sha), name
        assert re.fullmatch(
            r"https://raw\.githubusercontent\.com/[\w-]+/[\w-]+/[0-9a-f]{40}/\S+", url
        ), name
    assert {n.split("/")[0] for n in data.REGISTRY} == {"srlut", "hklut", "set5"}
