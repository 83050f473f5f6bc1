"""Native CPU kernels, compiled on first use for the machine they run on and loaded as TensorFlow ops.

Why: the recipe's training step spends most of its time outside the large
matrix products, in the LSTM's 35 small steps.  XLA ran each step's
``[10, 200] x [200, 800]`` product at a third of a core's speed; the kernels
in ``kernels.cc`` run it at the core's peak (see that file).

The library is built with the system's C++ compiler (``$CXX``, else ``g++``
or ``c++``) against the installed TensorFlow, ``-march=native``, into
``~/.cache/lm_app/native`` (``$LM_APP_NATIVE_CACHE``), under a name that hashes
the sources, the flags, the compiler, TensorFlow's version and the CPU, so a
change of any of them builds anew and two machines sharing a home folder
never load each other's build.  It is written to a temporary file and renamed
into place, under a lock, so concurrent first runs build it once.  Where it
cannot be built (no compiler, another OS), or with ``LM_APP_NATIVE=0``,
:func:`ops` returns ``None`` and the callers keep their portable XLA paths.
Only training uses these ops; an exported SavedModel never contains them.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ("kernels.h", "kernels.cc", "ops.cc")
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


def commands(cxx, out):
    """The compiler commands that build the library ``out``: two objects, then the link.

    ``kernels.cc`` gets ``-march=native`` (the CPU's widest vectors); ``ops.cc``
    includes TensorFlow's headers, parts of which do not compile with every
    flag ``-march=native`` turns on, so it is built for the baseline CPU.
    """
    import tensorflow as tf

    common = ["-std=c++17", "-O3", "-fPIC", "-DNDEBUG"]
    kernels, wrapper = f"{out}.kernels.o", f"{out}.ops.o"
    march = f"-march={os.environ.get('LM_APP_NATIVE_MARCH') or 'native'}"  # the tests try older CPUs' code
    return [
        [cxx, *common, march, "-ffp-contract=fast", "-c", str(HERE / "kernels.cc"), "-o", kernels],
        [cxx, *common, *tf.sysconfig.get_compile_flags(), "-w", "-c", str(HERE / "ops.cc"), "-o", wrapper],
        [cxx, "-shared", kernels, wrapper, "-o", str(out), *tf.sysconfig.get_link_flags()],
    ]


def library_path(cxx):
    """Where the build for this machine, these sources and this TensorFlow lives."""
    import tensorflow as tf

    key = hashlib.sha256()
    for name in SOURCES:
        key.update((HERE / name).read_bytes())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    for part in (version, tf.__version__, _cpu_flags(), repr(commands(cxx, "x"))):
        key.update(part.encode())
    return cache_dir() / f"lm_app_ops-{key.hexdigest()[:16]}.so"


def build(cxx, path):
    """Compile into ``path`` (atomically, once even when several processes start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return
        print("lm_app: compiling the native kernels for this machine (once, a few seconds)",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / path.name
            first, second, link = commands(cxx, out)
            running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                       for c in (first, second)]  # the two objects build at once
            results = [(p.wait(), p.stdout.read()) for p in running]
            if all(code == 0 for code, _ in results):
                linked = subprocess.run(link, capture_output=True, text=True)
                results.append((linked.returncode, linked.stdout + linked.stderr))
            failed = [text for code, text in results if code != 0]
            if failed:
                raise RuntimeError(_first_error(failed[0]))
            os.replace(out, path)


def _first_error(output):
    """The line of a compiler's output that says what went wrong (its first ``error``), else its last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line), lines[-1] if lines else "the compiler failed")


def ops():
    """The loaded ops module (``lm_app_lstm_forward``, ...), or None where they are unavailable or a GPU is used."""
    if "ops" in _loaded:
        return _loaded["ops"]
    _loaded["ops"] = None
    if os.environ.get("LM_APP_NATIVE", "1") == "0":
        return None
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):  # CPU kernels: a GPU keeps the XLA paths, on the GPU
        return None
    cxx = compiler()
    if cxx is None or sys.platform != "linux":
        _warn("no C++ compiler found" if cxx is None else f"not built on {sys.platform}")
        return None
    try:
        path = library_path(cxx)
        if not path.exists():
            build(cxx, path)
        _loaded["ops"] = tf.load_op_library(str(path))
    except Exception as e:  # a failed build must never stop training: the XLA paths remain
        _warn(f"{type(e).__name__}: {e}")
    return _loaded["ops"]


def _warn(reason):
    print(f"lm_app: native kernels unavailable ({reason}); training uses the slower XLA loops",
          file=sys.stderr, flush=True)
