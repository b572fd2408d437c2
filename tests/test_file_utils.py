"""get_file: cache location, hash checks, atomic downloads, extraction, offline errors."""
import hashlib
import io
import os
import tarfile
import urllib.error
import zipfile

import pytest

from kestrel.utils import file_utils
from kestrel.utils.file_utils import get_file, hash_file, validate_file

ORIGIN = "https://example.invalid/data/blob.bin"
PAYLOAD = b"kestrel test payload\n" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    return tmp_path / "kh"


@pytest.fixture
def served(monkeypatch):
    """Replace the network: `_download` writes `served.payload` and counts the calls."""
    class Server:
        payload = PAYLOAD
        calls = []

    def fake(origin, path):
        Server.calls.append(origin)
        with open(path, "wb") as f:
            f.write(Server.payload)
    Server.calls = []
    monkeypatch.setattr(file_utils, "_download", fake)
    return Server


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".")]


def test_hashes_match_hashlib(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert hash_file(path) == SHA
    assert hash_file(path, "md5") == hashlib.md5(PAYLOAD).hexdigest()
    assert validate_file(path, SHA) and validate_file(path, hashlib.md5(PAYLOAD).hexdigest())
    assert not validate_file(path, "0" * 64)


def test_downloads_once_into_keras_home(home, served):
    path = get_file("blob.bin", ORIGIN, file_hash=SHA)
    assert path == str(home / "datasets" / "blob.bin")
    assert open(path, "rb").read() == PAYLOAD
    assert get_file("blob.bin", ORIGIN, file_hash=SHA) == path
    assert served.calls == [ORIGIN]
    assert get_file(origin=ORIGIN) == path  # fname defaults to the URL's last part


def test_cache_dir_and_subdir(tmp_path, served):
    path = get_file("b", ORIGIN, cache_dir=tmp_path / "c", cache_subdir="models")
    assert path == str(tmp_path / "c" / "models" / "b")


def test_corrupt_cached_copy_is_downloaded_again(home, served):
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "blob.bin").write_bytes(b"truncated")
    path = get_file("blob.bin", ORIGIN, file_hash=SHA)
    assert open(path, "rb").read() == PAYLOAD and served.calls == [ORIGIN]


def test_download_with_wrong_hash_is_rejected_and_removed(home, served):
    served.payload = b"tampered"
    with pytest.raises(ValueError, match="corrupted"):
        get_file("blob.bin", ORIGIN, file_hash=SHA)
    folder = home / "datasets"
    assert not (folder / "blob.bin").exists() and not _leftovers(folder)


def test_offline_error_says_where_from_and_where_to(home, monkeypatch):
    def refuse(origin):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(file_utils, "urlopen", refuse)
    with pytest.raises(OSError) as info:
        get_file("blob.bin", ORIGIN, file_hash=SHA)
    message = str(info.value)
    target = str(home / "datasets" / "blob.bin")
    assert ORIGIN in message and target in message and "could not be downloaded" in message
    assert not _leftovers(home / "datasets")


def test_fname_must_not_be_a_path(home):
    with pytest.raises(ValueError, match="fname"):
        get_file(os.path.join("a", "b.npz"), ORIGIN)
    with pytest.raises(ValueError, match="origin"):
        get_file("b.npz")


def _tar_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_extracts_tar_into_named_folder(home, served):
    served.payload = _tar_bytes({"inner/a.txt": b"A", "inner/b.txt": b"B"})
    folder = get_file("stuff", ORIGIN, extract=True)
    assert folder == str(home / "datasets" / "stuff")
    assert open(os.path.join(folder, "inner", "b.txt")).read() == "B"
    assert (home / "datasets" / "stuff_archive").exists()
    assert get_file("stuff", ORIGIN, untar=True) == folder and len(served.calls) == 1


def test_archive_escaping_its_folder_is_refused(home, served):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil.txt", "x")
    served.payload = buffer.getvalue()
    with pytest.raises(ValueError, match="outside"):
        get_file("z.zip", ORIGIN, extract=True)
    assert not (home / "evil.txt").exists()
    served.payload = _tar_bytes({"../evil.txt": b"x"})
    with pytest.raises(tarfile.TarError):
        get_file("t.tar.gz", ORIGIN, extract=True)
    assert not (home / "datasets" / "evil.txt").exists()
