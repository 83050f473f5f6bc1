"""Leftovers never block: whatever a killed write leaves, the next one recovers it; outputs are readable."""
import os
import stat
import subprocess
import sys

import pytest

from lm_app import atomic
from lm_app.atomic import FolderLock, atomic_path, recover


def write_folder(path, text):
    with atomic_path(path, directory=True) as tmp:
        (tmp / "f.txt").write_text(text)


def dead_pid():
    """The id of a process that has ended (its temporaries are leftovers)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("model", ["absent", "whole"])
@pytest.mark.parametrize("old", ["absent", "whole", "half-removed"])
@pytest.mark.parametrize("temporary", [False, True])
def test_every_leftover_combination_is_recovered(tmp_path, model, old, temporary):
    path = tmp_path / "lm"
    if model == "whole":
        path.mkdir()
        (path / "f.txt").write_text("current")
    if old != "absent":
        (tmp_path / "lm.old" / "logs").mkdir(parents=True)  # not empty: rename cannot replace it
        (tmp_path / "lm.old" / "logs" / "events").write_text("")
        if old == "whole":
            (tmp_path / "lm.old" / "f.txt").write_text("previous")
    stale = tmp_path / f".lm{atomic.TEMP}{dead_pid()}-0a1b2c3d.tmp"
    if temporary:
        stale.mkdir()
        (stale / "saved_model.pb").write_text("half")

    recover(path)
    assert not (tmp_path / "lm.old").exists()
    assert not stale.exists()
    if model == "whole":
        assert (path / "f.txt").read_text() == "current"
    elif old == "whole":
        assert (path / "f.txt").read_text() == "previous"  # killed between the renames: put back

    write_folder(path, "new")
    assert (path / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]


def test_a_leftover_old_folder_does_not_block_the_next_write(tmp_path):
    path = tmp_path / "lm"
    write_folder(path, "first")
    (tmp_path / "lm.old" / "variables").mkdir(parents=True)  # a kill during the old copy's removal
    (tmp_path / "lm.old" / "variables" / "data").write_text("x")
    write_folder(path, "second")
    assert (path / "f.txt").read_text() == "second"
    assert not (tmp_path / "lm.old").exists()


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    live = tmp_path / f".lm{atomic.TEMP}{os.getppid()}-0a1b2c3d.tmp"
    live.mkdir()
    write_folder(tmp_path / "lm", "new")
    assert live.exists()


def test_outputs_get_the_umasks_permissions(tmp_path):
    saved = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "history.json", "{}")
        write_folder(tmp_path / "lm", "x")
        with atomic_path(tmp_path / "best.weights.h5", suffix=".weights.h5") as tmp:
            assert mode(tmp) == 0o644
    finally:
        os.umask(saved)
    assert mode(tmp_path / "history.json") == 0o644
    assert mode(tmp_path / "best.weights.h5") == 0o644
    assert mode(tmp_path / "lm") == 0o755


def test_folders_are_synced_after_renames(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            synced.append(info.st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic.write_text(tmp_path / "a.txt", "x")
    assert synced == [tmp_path.stat().st_ino]
    write_folder(tmp_path / "lm", "x")
    assert synced[1:] == [tmp_path.stat().st_ino]


def test_the_lock_holds_while_an_export_replaces_the_folder(tmp_path):
    """An export swaps the model folder for a new one: a second run must still be refused."""
    from lm_app.errors import UsageError

    model_dir = tmp_path / "lm"
    with FolderLock(model_dir):
        model_dir.rename(tmp_path / "lm.old")  # what export's swap does
        model_dir.mkdir()
        with pytest.raises(UsageError, match="is in use by process"):
            with FolderLock(model_dir):
                pass
