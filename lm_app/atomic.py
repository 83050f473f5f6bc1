"""Atomic writes: a killed process leaves the old file (or folder) or the new one, never half of one.

Temporaries are named ``.<name>.tmp-<pid>-<random><suffix>`` beside their
target, so a later start can tell a dead process's leftovers (removed) from a
live one's (kept).  They are created with the umask's permissions (0644 files,
0755 folders under umask 022), not ``mkstemp``'s 0600, so a serving user can
read what training wrote.
"""
import contextlib
import glob
import json
import os
import secrets
import shutil
from pathlib import Path

from .errors import UsageError

TEMP = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, directory=False, suffix=".tmp"):
    """Yield a temporary path beside ``path``; on success rename it into place.

    Beside, not in /tmp, so that the final rename stays on one file system and is
    atomic.  A folder cannot be renamed over a non-empty one, so an old folder is
    first moved aside to ``<name>.old`` and removed only after the new one is in
    place; :func:`recover` finishes or undoes a swap that a kill interrupted.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        tmp = _temporary(path, directory, suffix)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        if directory:
            _swap_folder(tmp, path)
        else:
            os.replace(tmp, path)
            sync_folder(path.parent)
    except OSError as e:
        _remove(tmp)
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


def _temporary(path, directory, suffix):
    while True:
        tmp = path.with_name(f".{path.name}{TEMP}{os.getpid()}-{secrets.token_hex(4)}{suffix}")
        try:
            if directory:
                tmp.mkdir(0o777)  # the umask applies, as for any new folder
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _swap_folder(tmp, path):
    old = old_path(path)
    if path.exists():
        os.replace(path, old)  # recover() has made sure no old copy is in the way
    os.replace(tmp, path)
    sync_folder(path.parent)
    shutil.rmtree(old, ignore_errors=True)  # what a kill leaves here, the next recover() removes


def old_path(path):
    path = Path(path)
    return path.with_name(path.name + ".old")


def recover(path):
    """Leave ``path`` whole whatever point a write of it was killed at, and remove dead temporaries.

    ``<path>.old`` beside ``<path>``: the swap finished and only the old copy's
    removal was cut short, so it goes.  ``<path>.old`` alone: killed between the
    two renames, so the old version comes back.  Temporaries of processes that
    no longer run go; a live process's are left alone.
    """
    path = Path(path)
    old = old_path(path)
    if old.exists():
        if path.exists():
            _remove(old)
            if old.exists():
                raise OSError(f"cannot remove {old}")
        else:
            with contextlib.suppress(FileNotFoundError):  # another process recovered it first
                os.replace(old, path)
        sync_folder(path.parent)
    remove_stale(path.parent, f".{glob.escape(path.name)}{TEMP}*")


def remove_stale(folder, pattern=f".*{TEMP}*"):
    """Remove the temporaries in ``folder`` whose writer is dead (killed before it could clean up)."""
    for tmp in Path(folder).glob(pattern):
        if not _writer_alive(tmp):
            _remove(tmp)


def _writer_alive(tmp):
    try:
        pid = int(tmp.name.rsplit(TEMP, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return True  # not one of ours: leave it
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sync_folder(folder):
    """fsync a folder, so the renames in it survive a power cut as well as a kill."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(tmp):
    if tmp.is_dir() and not tmp.is_symlink():
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
    """An exclusive ``flock`` on ``.<folder>.lock`` beside the folder: a second run writing it is refused.

    Beside, not inside: an export replaces the whole folder by a new one, and
    a lock file inside would be left behind with the old folder, so a second
    run could lock the new one's while the first still writes.  The kernel
    drops the lock when the process dies, even by ``kill -9``, so a crash
    never leaves a stale lock behind.  A clean exit removes the file; whoever
    locked that file just before its removal sees it gone and locks a new one.
    """

    def __init__(self, folder):
        folder = Path(folder)
        self.folder = folder
        self.path = folder.parent / f".{folder.name}.lock"
        self.file = None

    def __enter__(self):
        while not self._lock():
            pass
        return self

    def _lock(self):
        """Lock the file at ``self.path``; False if it was removed meanwhile (then lock again)."""
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a+")
        except OSError as e:
            raise UsageError(f"cannot write {self.folder}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise UsageError(f"{self.folder} is in use by {holder}; wait for it or use "
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
