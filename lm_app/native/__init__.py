"""Native CPU kernels, compiled on first use for the machine they run on.

Why: the recipe's training step spends most of its time outside the large
matrix products, in the LSTM's 35 small steps.  XLA ran each step's
``[10, 200] x [200, 800]`` product well below a core's peak; the kernels
in ``kernels.cc`` (the GRU's in ``gru.cc``) run it at the core's peak (see that file).  They are
loaded as TensorFlow ops (:func:`ops`).  build-dict's word counter
(``count.cc``) is a second, TensorFlow-free library loaded with ctypes
(:func:`counter_library`), so build-dict still never imports TensorFlow.

The library is built with the system's C++ compiler (``$CXX``, else ``g++``
or ``c++``) against the installed TensorFlow, ``-march=native``, into
``~/.cache/lm_app/native`` (``$LM_APP_NATIVE_CACHE``), under a name that hashes
the sources, the flags, the compiler, TensorFlow's version and the CPU, so a
change of any of them builds anew and two machines sharing a home folder
never load each other's build.  It is written to a temporary file and renamed
into place, under a lock, so concurrent first runs build it once, with its
SHA-256 recorded beside it.  A library is code this process runs, so it is
loaded only from a 0700 folder of this user's, only if it is this user's file,
writable by nobody else, with the recorded checksum; otherwise (truncated,
altered, left by someone else) it is built anew.  The op wrappers, compiled
for the baseline CPU, are kept beside it as an object of their own, checked the
same way, so a build for another CPU (or after a change to the kernels alone)
compiles only the kernels.  Where it
cannot be built (no compiler, another OS), or with ``LM_APP_NATIVE=0``,
:func:`ops` returns ``None`` and the callers keep their portable XLA paths.
Only training uses these ops; an exported SavedModel never contains them.
"""
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import stat as stat_module
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..atomic import write_text

HERE = Path(__file__).resolve().parent
SOURCES = {"ops": ("kernels.h", "vectors.h", "kernels.cc", "gru.cc", "ops.h", "ops.cc", "gru_ops.cc", "wrappers.cc"),
           "count": ("count.cc",)}
# What the op wrappers' object is compiled from (wrappers.cc includes the rest).
WRAPPER_SOURCES = ("kernels.h", "ops.h", "ops.cc", "gru_ops.cc", "wrappers.cc")
WRAPPERS_OBJECT = "{out}.wrappers.cc.o"
BUILD_TIMEOUT = 600  # seconds for the whole build: a stuck compiler must not hold the lock for ever
_loaded = {}


def cache_dir():
    if os.environ.get("LM_APP_NATIVE_CACHE"):
        return Path(os.environ["LM_APP_NATIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lm_app" / "native"


def compiler():
    """The C++ compiler to build with, or None."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


def commands(cxx, out, name="ops"):
    """The compiler commands that build the library ``out``: its objects, then the link.

    ``kernels.cc`` and ``gru.cc`` get ``-march=native`` (the CPU's widest vectors);
    the op wrappers (``ops.cc``, ``gru_ops.cc``) include TensorFlow's headers, parts of which do not
    compile with every flag ``-march=native`` turns on, so they are built for the baseline CPU, as
    one translation unit (``wrappers.cc``): parsing those headers is most of a build's time.
    ``count.cc`` (build-dict's counter) is plain C++ without TensorFlow.
    """
    common = ["-std=c++17", "-O3", "-fPIC", "-DNDEBUG"]
    march = f"-march={os.environ.get('LM_APP_NATIVE_MARCH') or 'native'}"  # the tests try older CPUs' code
    if name == "count":
        return [[cxx, *common, march, "-shared", str(HERE / "count.cc"), "-o", str(out)]]
    import tensorflow as tf

    kernels, wrappers = ("kernels.cc", "gru.cc"), ("wrappers.cc",)
    return [
        *([cxx, *common, march, "-ffp-contract=fast", "-c", str(HERE / k), "-o", f"{out}.{k}.o"] for k in kernels),
        *([cxx, *common, *tf.sysconfig.get_compile_flags(), "-w", "-c", str(HERE / w), "-o", f"{out}.{w}.o"]
          for w in wrappers),
        [cxx, "-shared", *(f"{out}.{f}.o" for f in kernels + wrappers), "-o", str(out),
         *tf.sysconfig.get_link_flags()],
    ]


def library_path(cxx, name="ops"):
    """Where the build of library ``name`` for this machine, its sources and (ops) this TensorFlow lives."""
    commands_used = repr(commands(cxx, "x", name))
    return cache_dir() / f"lm_app_{name}-{_key(cxx, SOURCES[name], _cpu_flags(), commands_used, name=name)}.so"


def wrappers_path(cxx):
    """Where the op wrappers' object lives: built for the baseline CPU, one serves the builds for every CPU."""
    wrappers = next(c for c in commands(cxx, "x") if c[-1] == WRAPPERS_OBJECT.format(out="x"))
    return cache_dir() / f"lm_app_wrappers-{_key(cxx, WRAPPER_SOURCES, repr(wrappers))}.o"


def _key(cxx, sources, *parts, name="ops"):
    """A short hash of the sources, the compiler, ``parts`` and (ops) TensorFlow's version."""
    key = hashlib.sha256()
    for source in sources:
        key.update((HERE / source).read_bytes())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=BUILD_TIMEOUT).stdout
    parts = [version, *parts]
    if name == "ops":
        import tensorflow as tf

        parts.append(tf.__version__)
    for part in parts:
        key.update(part.encode())
    return key.hexdigest()[:16]


def build(cxx, path, name="ops"):
    """Compile into ``path`` (atomically, once even when several processes start together).

    The compiler writes into files, never into a pipe that nobody reads while
    it runs (a pipe holds 64 KB: a noisier compiler would block with the lock
    held, and every other ``train`` on the machine would wait for it).
    """
    with _lock(path.parent):
        if trusted(path):
            return
        what = "training kernels" if name == "ops" else "word counter of build-dict"
        print(f"lm_app: compiling the native {what} for this machine (once, a few seconds)",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / path.name
            *objects, link = commands(cxx, out, name)
            wrappers, kept = WRAPPERS_OBJECT.format(out=out), wrappers_path(cxx) if name == "ops" else None
            reused = kept is not None and trusted(kept)
            if reused:  # parsing TensorFlow's headers again would be most of the build
                objects = [command for command in objects if command[-1] != wrappers]
                link = [str(kept) if part == wrappers else part for part in link]
            deadline = time.monotonic() + BUILD_TIMEOUT
            steps = [[(command, Path(tmp) / f"{i}.log") for i, command in enumerate(objects)],  # at once
                     [(link, Path(tmp) / "link.log")]]
            for step in steps:
                _run_together(step, deadline)
            if kept and not reused:
                _install(Path(wrappers), kept)
            _install(out, path)


def _install(built, path):
    """Move ``built`` to ``path`` with its SHA-256 beside it (written first: a file without it is rebuilt)."""
    with open(built, "rb") as f:
        write_text(_checksum_path(path), _sha256(f) + "\n")
    os.replace(built, path)


def _run_together(step, deadline):
    """Run ``(command, log file)`` pairs at once; raise with the first error line if one fails or runs too long."""
    running = []
    try:
        for command, log in step:
            with open(log, "wb") as out:
                running.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True), log))
        for process, log in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"the compiler ran past {BUILD_TIMEOUT} s") from None
        for process, log in running:
            if process.returncode != 0:
                raise RuntimeError(_first_error(log))
    finally:
        for process, _ in running:
            if process.returncode is None:  # the compiler and what it started (cc1plus, as, ld)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _first_error(log):
    """The line of a compiler's log that says what went wrong (its first ``error``), else its last."""
    with open(log, "rb") as f:
        output = f.read(1 << 20).decode(errors="replace")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line), lines[-1] if lines else "the compiler failed")


@contextlib.contextmanager
def _lock(folder):
    """The build lock of ``folder``; a symbolic link in its place is replaced, never followed."""
    name = folder / ".lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        name.unlink()
        fd = os.open(name, flags | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def private_cache():
    """The cache folder, created 0700, or a RuntimeError if it belongs to another user.

    A library is code this process will run: nobody else may be able to put
    one there.  A folder of ours that others could write is closed (what they
    may have left in it fails :func:`trusted` and is rebuilt).
    """
    folder = cache_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stat = folder.stat()
    if stat.st_uid != os.geteuid():
        raise RuntimeError(f"{folder} belongs to another user (uid {stat.st_uid})")
    if stat.st_mode & 0o777 != 0o700:
        folder.chmod(0o700)
    return folder


def trusted(path):
    """Whether ``path`` is a library this user built: a plain file of ours that only we can write,
    whose SHA-256 is the one recorded when it was built (a truncated or altered file is not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not _ours(os.fstat(fd)):
            return False
        digest = _sha256(f)
    checksum = _checksum_path(path)
    try:
        return _ours(checksum.lstat()) and checksum.read_text().strip() == digest
    except OSError:
        return False


def _ours(stat):
    return stat_module.S_ISREG(stat.st_mode) and stat.st_uid == os.geteuid() and not stat.st_mode & 0o022


def _checksum_path(path):
    return path.with_name(path.name + ".sha256")


def _sha256(file):
    digest = hashlib.sha256()
    while chunk := file.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def ops():
    """The loaded ops module (``lm_app_lstm_forward``, ...), or None where they are unavailable or a GPU is used.

    The first call comes from a layer or a loss being traced, maybe by
    AutoGraph (``evaluate``'s functions), so the probe (the compiler's
    ``--version``, the checks, a build) is kept out of AutoGraph's conversion:
    converted, it printed a warning block for each library function it reached.
    """
    if "ops" not in _loaded:
        import tensorflow as tf

        _loaded["ops"] = tf.autograph.experimental.do_not_convert(_load)()
    return _loaded["ops"]


def _load():
    if os.environ.get("LM_APP_NATIVE", "1") == "0":
        return None
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):  # CPU kernels: a GPU keeps the XLA paths, on the GPU
        return None
    path = _built("ops", "training uses the slower XLA loops")
    return None if path is None else tf.load_op_library(str(path))


def counter_library():
    """build-dict's counter (``count.cc``) through ctypes, or None (then it counts in Python)."""
    if "count" not in _loaded:
        library = None
        if os.environ.get("LM_APP_NATIVE", "1") != "0":
            path = _built("count", "build-dict counts in Python, more slowly")
            library = None if path is None else _declare_counter(ctypes.CDLL(str(path)))
        _loaded["count"] = library
    return _loaded["count"]


def _declare_counter(library):
    handle, size = ctypes.c_void_p, ctypes.c_int64
    for function, result, arguments in (
            ("new", handle, []), ("free", None, [handle]), ("size", size, [handle]),
            ("key_bytes", size, [handle]),
            ("add", None, [handle, ctypes.c_char_p, size, ctypes.c_int]),
            ("dump", None, [handle, ctypes.c_void_p, ctypes.c_void_p])):
        f = getattr(library, f"lm_app_counter_{function}")
        f.restype, f.argtypes = result, arguments
    return library


def _built(name, fallback):
    """The path of a trusted build of library ``name`` (built now if needed), or None after a warning."""
    cxx = compiler()
    if cxx is None or sys.platform != "linux":
        _warn("no C++ compiler found" if cxx is None else f"not built on {sys.platform}", fallback)
        return None
    try:
        private_cache()
        path = library_path(cxx, name)
        if not trusted(path):
            build(cxx, path, name)
        return path
    except Exception as e:  # a failed build must never stop the command: the portable path remains
        _warn(f"{type(e).__name__}: {e}", fallback)
        return None


def _warn(reason, fallback):
    print(f"lm_app: native kernels unavailable ({reason}); {fallback}",
          file=sys.stderr, flush=True)
