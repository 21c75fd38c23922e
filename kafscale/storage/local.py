"""An object store in a local directory: the embedded default.

Each object is a file at ``{root}/{key}``. A put writes a temporary file in
``{root}/.staging``, fsyncs it, renames it into place and fsyncs the
directory, so an object is either absent, the old one or the whole new one,
and it survives a crash once the put has fired. All file I/O runs in the
reactor's thread pool.
"""

import errno
import os
import stat
import tempfile

from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from kafscale.storage.interfaces import (
    IObjectStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    check_byte_range,
)

# The one name under the root that is not an object key.
STAGING = ".staging"

# Failures that may clear by themselves (space freed by retention, a flaky disk).
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN})
# A key whose path runs into a directory or through a file names no object.
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


@implementer(IObjectStore)
class LocalObjectStore:
    """:class:`IObjectStore` over the files under ``root``.

    Limitation against S3: a key cannot also be the "directory" of another
    key (``a/b`` and ``a/b/c``); the segment layout never does that.
    Directories emptied by deletes are left in place.
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self._staging = os.path.join(self.root, STAGING)

    def put(self, key, data):
        return deferToThread(self._put, key, data)

    def get(self, key, start=None, end=None):
        return deferToThread(self._get, key, start, end)

    def head(self, key):
        return deferToThread(self._head, key)

    def list(self, prefix):
        return deferToThread(self._list, prefix)

    def delete(self, key):
        return deferToThread(self._delete, key)

    def close(self):
        return succeed(None)

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if (
            not key
            or "\0" in key
            or parts[0] == STAGING
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ValueError(f"invalid object key {key!r}")
        return os.path.join(self.root, *parts)

    def _put(self, key, data):
        path = self._path(key)
        try:
            _make_dirs(self._staging)
            descriptor, staged = tempfile.mkstemp(dir=self._staging)
            try:
                with os.fdopen(descriptor, "wb") as staged_file:
                    staged_file.write(data)
                    staged_file.flush()
                    os.fsync(staged_file.fileno())
                _make_dirs(os.path.dirname(path))
                os.replace(staged, path)
            except BaseException:
                _remove_quietly(staged)
                raise
            _fsync_directory(os.path.dirname(path))
        except OSError as e:
            raise _store_error(e, key) from e

    def _get(self, key, start, end):
        check_byte_range(start, end)
        path = self._path(key)
        try:
            with open(path, "rb") as object_file:
                if start:
                    object_file.seek(start)
                return object_file.read() if end is None else object_file.read(end - (start or 0))
        except _MISSING as e:
            raise ObjectNotFound(key) from e
        except OSError as e:
            raise _store_error(e, key) from e

    def _head(self, key):
        path = self._path(key)
        try:
            status = os.stat(path)
        except _MISSING as e:
            raise ObjectNotFound(key) from e
        except OSError as e:
            raise _store_error(e, key) from e
        if not stat.S_ISREG(status.st_mode):
            raise ObjectNotFound(key)
        return status.st_size

    def _list(self, prefix):
        # Walk only the deepest directory the prefix names in full, and only
        # the subdirectories that can still hold matching keys.
        directory = prefix.rpartition("/")[0]
        if directory.split("/")[0] == STAGING:
            return []
        top = os.path.join(self.root, *directory.split("/")) if directory else self.root
        objects = []
        try:
            for dirpath, dirnames, filenames in os.walk(top, onerror=_raise):
                relative = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                base = "" if relative == "." else relative + "/"
                dirnames[:] = [
                    name
                    for name in dirnames
                    if not (base == "" and name == STAGING) and _may_match(f"{base}{name}/", prefix)
                ]
                for name in filenames:
                    key = base + name
                    if key.startswith(prefix):
                        try:
                            status = os.stat(os.path.join(dirpath, name))
                        except FileNotFoundError:
                            continue  # deleted while we looked
                        objects.append(ObjectInfo(key, status.st_size, status.st_mtime_ns // 1_000_000))
        except _MISSING:
            return []
        except OSError as e:
            raise _store_error(e, prefix) from e
        objects.sort()
        return objects

    def _delete(self, key):
        path = self._path(key)
        try:
            os.unlink(path)
        except _MISSING:
            return
        except OSError as e:
            raise _store_error(e, key) from e


def _may_match(directory_key: str, prefix: str) -> bool:
    return directory_key.startswith(prefix) or prefix.startswith(directory_key)


def _make_dirs(path):
    """Create ``path`` and missing parents, making each new entry durable."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    _make_dirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    _fsync_directory(parent)


def _fsync_directory(path):
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _raise(error):
    raise error


def _store_error(error: OSError, key: str) -> ObjectStoreError:
    message = f"{os.strerror(error.errno) if error.errno else error} at {key!r}"
    if error.errno in _TRANSIENT_ERRNOS:
        return ObjectStoreUnavailable(message, key)
    return ObjectStoreError(message, key)
