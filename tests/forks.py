"""``python -m …`` and ``python -c …`` in processes forked from one that has already imported TensorFlow.

A test that runs the CLI as a user does needs a real process: its own pid, exit code,
signals, pipes, files and memory. It does not need the seconds of a fresh
``import tensorflow`` (most of such a test's time). So each pytest worker keeps one
process that imports TensorFlow, and nothing of lm_app, once (the standard library's
*forkserver*), and every run is a child forked from it, which then runs the module or code
as the interpreter would. ``Popen`` and ``run`` answer as ``subprocess``'s do.

What a fork cannot show stays on ``subprocess``: what the TensorFlow import prints
(tests/test_quiet.py), which modules a bare interpreter loads, peak memory from the start
of a process, warnings raised while TensorFlow loads, and programs that are not a Python
module (a compiler, a script). This module imports nothing but the standard library: it
is what the forkserver loads besides TensorFlow, and a child that never imports lm_app
must not get it from here.
"""
import atexit
import functools
import multiprocessing
import os
import resource
import runpy
import signal
import subprocess
import sys
import threading
from multiprocessing import forkserver, reduction

PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL


@functools.cache
def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tensorflow", __name__])
    # Reap the server when this process ends, so that its CPU time (and its children's) is
    # counted where the test run's is, as a subprocess's would be.
    atexit.register(forkserver._forkserver._stop)
    return context


class _Fd:
    """A file descriptor handed to the child (the forkserver passes it over its socket)."""

    def __init__(self, fd):
        self.fd = fd

    def __reduce__(self):
        return _detach, (reduction.DupFd(self.fd),)


def _detach(duplicate):
    return duplicate.detach()


def _child(argv, cwd, env, fds, sigint_ignored, preexec_fn):
    """The forked child: the state ``python argv…`` would start with, then the module or code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for target, fd in enumerate(fds):
        if fd is not None and fd != target:
            os.dup2(fd, target)
            os.close(fd)
    # New streams over the new descriptors, buffered as the interpreter buffers them.
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN if sigint_ignored else signal.default_int_handler)
    if preexec_fn is not None:
        preexec_fn()
    if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:  # what Python does at start: Ctrl-C raises
        signal.signal(signal.SIGINT, signal.default_int_handler)
    option, target, *rest = argv
    if option == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif option == "-c":
        sys.argv = ["-c", *rest]
        sys.path.insert(0, "")
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    else:
        raise ValueError(f"only -m and -c are forked, not {option!r}")


def _limit_file_size(limit):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, as on a full disk, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def limit_file_size(limit):
    """A ``preexec_fn``: files the child writes stop at ``limit`` bytes, as on a disk that is full."""
    return functools.partial(_limit_file_size, limit)


def default_sigint():
    """A ``preexec_fn``: Ctrl-C interrupts the child, as in a terminal (a background job may inherit it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Popen:
    """``subprocess.Popen([sys.executable, "-m" | "-c", …])`` as a fork (``preexec_fn`` must pickle)."""

    def __init__(self, args, *, cwd=None, env=None, stdin=None, stdout=None, stderr=None, text=False,
                 preexec_fn=None):
        if args[0] != sys.executable:
            raise ValueError("only the Python interpreter's own runs are forked")
        self.args, self.returncode = args, None
        child_fds, ours, mine = [None, None, None], [None, None, None], []
        for target, how in enumerate((stdin, stdout, stderr)):
            if how == PIPE:
                read, write = os.pipe()
                child_fds[target], ours[target] = (read, write) if target == 0 else (write, read)
                mine.append(child_fds[target])
            elif how == DEVNULL:
                child_fds[target] = os.open(os.devnull, os.O_RDWR)
                mine.append(child_fds[target])
            elif how == STDOUT:
                child_fds[target] = child_fds[1] if child_fds[1] is not None else 1
            elif how is not None:
                child_fds[target] = how if isinstance(how, int) else how.fileno()
            elif target > 0:  # inherited, as by a subprocess: this process's stdout or stderr now
                child_fds[target] = target
        process = _context().Process(
            target=_child, daemon=True,
            args=(list(map(str, args[1:])), str(cwd or os.getcwd()), dict(os.environ if env is None else env),
                  [None if fd is None else _Fd(fd) for fd in child_fds],
                  signal.getsignal(signal.SIGINT) == signal.SIG_IGN, preexec_fn))
        try:
            process.start()
        finally:
            for fd in mine:
                os.close(fd)
        self._process, self.pid = process, process.pid
        mode = "" if text else "b"
        self.stdin = None if ours[0] is None else open(ours[0], "w" + mode)
        self.stdout, self.stderr = (None if fd is None else open(fd, "r" + mode) for fd in ours[1:])

    def poll(self):
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def communicate(self, input=None, timeout=None):
        """Both pipes read to their end (each in a thread, so neither can fill and block the child)."""
        if self.stdin is not None:
            if input:
                self.stdin.write(input)
            self.stdin.close()
        results = {}

        def read(name, stream):
            results[name] = stream.read()
            stream.close()

        readers = [threading.Thread(target=read, args=(name, stream), daemon=True)
                   for name, stream in (("out", self.stdout), ("err", self.stderr)) if stream is not None]
        for reader in readers:
            reader.start()
        self.wait(timeout)
        for reader in readers:
            reader.join()
        return results.get("out"), results.get("err")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def run(args, *, input=None, capture_output=False, timeout=None, check=False, **popen):
    """``subprocess.run`` as a fork."""
    if capture_output:
        popen.update(stdout=PIPE, stderr=PIPE)
    if input is not None:
        popen["stdin"] = PIPE
    proc = Popen(args, **popen)
    try:
        out, err = proc.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, args, out, err)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
