"""`get_file`: download a file into the Keras cache once, verify its hash, extract archives.

Files land in `~/.keras/datasets` (or `$KERAS_HOME/datasets`), the folder Keras itself uses,
so data downloaded by Keras is reused and the other way round. Downloads and extractions are
atomic: an interrupted transfer never leaves a partial file under the final name.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import zipfile
from urllib.request import urlopen

_CHUNK = 1 << 16


def keras_home() -> str:
    """`$KERAS_HOME` when set, else `~/.keras` (a temp folder when home is not writable)."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return os.path.join(base, ".keras")


def hash_file(fpath, algorithm: str = "sha256", chunk_size: int = _CHUNK) -> str:
    """The hex digest of a file, `"sha256"` or `"md5"`."""
    hasher = _hasher(algorithm, None)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash: str, algorithm: str = "auto") -> bool:
    """Whether the file's sha256 (64 hex digits) or md5 digest equals `file_hash`."""
    hasher = _hasher(algorithm, file_hash)
    return hash_file(fpath, hasher.name) == str(file_hash).lower()


def _hasher(algorithm: str, file_hash):
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None
                                 and len(str(file_hash)) == 64):
        return hashlib.sha256()
    if algorithm in ("md5", "auto"):
        return hashlib.md5()
    raise ValueError(f"Unknown hash algorithm; use 'auto', 'sha256' or 'md5'. "
                     f"Received: hash_algorithm={algorithm!r}")


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False) -> str:
    """Download `origin` into the cache unless a valid copy is there; return its local path.

    Args:
        fname: local file name; defaults to the last part of `origin`. For archives to
            extract, a name without a dot is the extraction folder's name.
        origin: URL of the file.
        untar: deprecated spelling of `extract=True, archive_format="tar"`.
        md5_hash: deprecated spelling of `file_hash` with `hash_algorithm="md5"`.
        file_hash: expected sha256 or md5 hex digest; a cached copy that does not match is
            downloaded again, a download that does not match is rejected.
        cache_subdir: folder under the cache dir (an absolute path is used as is).
        hash_algorithm: `"auto"` (sha256 for 64 digits, else md5), `"sha256"` or `"md5"`.
        extract: extract the archive (tar, tar.gz, tar.bz2 or zip) and return its folder.
        archive_format: `"auto"`, `"tar"`, `"zip"`, or a list of those.
        cache_dir: cache root; defaults to `$KERAS_HOME` or `~/.keras`.
        force_download: download even when a valid copy is cached.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    base = os.path.expanduser(os.fspath(cache_dir) if cache_dir is not None else keras_home())
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    provided = fname is not None
    fname = os.fspath(fname) if provided else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname or fname in (os.curdir, os.pardir):
        raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'. "
                         "Please specify the `fname` argument.")
    if os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError("Paths are not accepted as the `fname` argument; use `cache_dir` to "
                         f"choose the parent folder. Received: fname={fname}")

    extract = extract or untar
    if untar:
        archive_format = "tar"
    target, extraction_dir = os.path.join(datadir, fname), None
    if extract:
        stem = fname.split(".")[0]
        if provided and "." not in fname:
            extraction_dir, target = target, os.path.join(datadir, f"{fname}_archive")
        elif provided:
            extraction_dir = os.path.join(datadir, f"{stem}_extracted")
        else:
            extraction_dir, target = target, os.path.join(datadir, f"{fname}_archive")

    download = force_download or not os.path.exists(target)
    if not download and file_hash is not None and not validate_file(target, file_hash,
                                                                     hash_algorithm):
        print(f"A local file was found at {target}, but its {hash_algorithm} hash does not "
              f"match {file_hash}; downloading it again.")
        download = True
    if download:
        _download_verified(origin, target, file_hash, hash_algorithm)
    if extraction_dir is None:
        return target
    if download or not os.path.isdir(extraction_dir):
        _extract(target, extraction_dir, archive_format)
    return extraction_dir


def _download_verified(origin: str, target: str, file_hash, algorithm: str) -> None:
    """Fetch `origin` into a temp file beside `target`, check its hash, rename it into place."""
    print(f"Downloading data from {origin}")
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".download.")
    os.close(handle)
    try:
        try:
            _download(origin, temp)
        except OSError as error:  # URLError and HTTPError are OSErrors too
            reason = getattr(error, "reason", None) or error
            raise OSError(
                f"URL fetch failure on {origin}: {reason}. The file could not be downloaded "
                f"(no network access?). Download it from {origin} on a connected machine and "
                f"place it at {target}, then run again.") from error
        if file_hash is not None and not validate_file(temp, file_hash, algorithm):
            raise ValueError(
                f"Incomplete or corrupted file detected: the {algorithm} hash of the data "
                f"downloaded from {origin} does not match the expected value {file_hash}.")
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _download(origin: str, path: str) -> None:
    """Stream the response body of `origin` into `path`, with a progress bar."""
    from kestrel.utils.progbar import Progbar

    with urlopen(origin) as response, open(path, "wb") as out:
        total = response.headers.get("Content-Length")
        bar = Progbar(int(total) if total else None, unit_name="B")
        done = 0
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)
            done += len(chunk)
            bar.update(done)


def _extract(archive: str, folder: str, archive_format) -> None:
    """Extract into a temp folder, then rename it to `folder`; member paths stay inside."""
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format or []))
    parent = os.path.dirname(folder)
    for kind in formats:
        if kind == "tar" and tarfile.is_tarfile(archive):
            opener = tarfile.open
        elif kind == "zip" and zipfile.is_zipfile(archive):
            opener = zipfile.ZipFile
        elif kind not in ("tar", "zip"):
            raise ValueError(f"Unknown archive format; use 'tar' or 'zip'. "
                             f"Received: archive_format={archive_format!r}")
        else:
            continue
        temp = tempfile.mkdtemp(dir=parent, prefix=".extract.")
        try:
            with opener(archive) as opened:
                if isinstance(opened, tarfile.TarFile):
                    opened.extractall(temp, filter="data")
                else:
                    _check_zip_members(opened, temp)
                    opened.extractall(temp)
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            os.replace(temp, folder)
        finally:
            if os.path.isdir(temp):
                shutil.rmtree(temp)
        return
    raise ValueError(f"Could not extract {archive}: it is not a {' or '.join(formats)} archive.")


def _check_zip_members(archive: zipfile.ZipFile, folder: str) -> None:
    root = os.path.realpath(folder)
    for name in archive.namelist():
        path = os.path.realpath(os.path.join(root, name))
        if os.path.commonpath([path, root]) != root:
            raise ValueError(f"Refusing to extract '{name}': it points outside {folder}.")
