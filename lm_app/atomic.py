"""Atomic writes: a killed process leaves the old file (or folder) or the new one, never half of one."""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError


@contextlib.contextmanager
def atomic_path(path, directory=False, suffix=".tmp"):
    """Yield a temporary path beside ``path``; on success rename it into place.

    Beside, not in /tmp, so that the final rename stays on one file system and is
    atomic.  A folder cannot be renamed over a non-empty one, so an old folder is
    first moved aside to ``<name>.old`` and removed only after the new one is in
    place; :func:`recover` puts it back if we die in between.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        if directory:
            old = path.with_name(path.name + ".old")
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


def recover(path):
    """Undo a folder swap that was interrupted between its two renames."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if old.exists() and not path.exists():
        os.replace(old, path)


def _remove(tmp):
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path, what="file"):
    """Load a JSON object, turning every way it can be broken into a UsageError."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory, not a file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{what} {path} is not a JSON object")
    return obj


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock``: a second run writing the same folder is refused.

    The kernel drops the lock when the process dies, even by ``kill -9``, so a
    crash never leaves a stale lock behind.  A clean exit removes the file, so
    a finished folder holds none; whoever locked that file just before its
    removal sees it gone from the folder and locks a new one.
    """

    def __init__(self, folder):
        self.path = Path(folder) / ".lock"
        self.file = None

    def __enter__(self):
        while not self._lock():
            pass
        return self

    def _lock(self):
        """Lock the file at ``self.path``; False if it was removed meanwhile (then lock again)."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a+")
        except OSError as e:
            raise UsageError(f"cannot write {self.path.parent}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise UsageError(f"{self.path.parent} is in use by {holder}; wait for it or use "
                             "another --model-dir") from None
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(self.file.fileno()).st_ino:  # its holder finished and removed it
            self.file.close()
            return False
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}\n")
        self.file.flush()
        return True

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)  # still locked: nobody can take it before it is gone
        self.file.close()
