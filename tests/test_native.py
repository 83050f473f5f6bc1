"""The native kernels: equal to the XLA loops they replace, and built (or not) as a user's machine would."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lm_app import losses, native
from lm_app.layers import gru, lstm

from tests import forks as forked
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Where the XLA paths' results are kept for the runs of the kernel tests for other CPUs."""
    return Path(os.environ.get("LM_APP_TEST_XLA_RESULTS") or tmp_path_factory.mktemp("xla_results"))


def xla_results(references, name, compute):
    """``compute()`` (the XLA path's tensors) as numpy arrays, computed once for every build tested.

    The kernel tests run for this machine's build, then in a pytest of their own for each of
    OTHER_CPUS; the XLA loops answer the same each time, and compiling them is most of those
    runs' time, so the first run stores their results in ``references`` and the others read them.
    """
    path = references / f"{name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return [stored[f"arr_{i}"] for i in range(len(stored.files))]
    arrays = [np.asarray(t) for t in compute()]
    with open(path.with_suffix(".tmp"), "wb") as f:
        np.savez(f, *arrays)
    os.replace(path.with_suffix(".tmp"), path)
    return arrays


@pytest.fixture(scope="module")
def kernels():
    ops = native.ops()
    if ops is None:
        if native.compiler() is None:
            pytest.skip("no C++ compiler on this machine: lm_app trains with its XLA loops")
        pytest.fail("a C++ compiler is here, yet the native kernels did not build (see stderr)")
    return ops


def lstm_inputs(T, B, H, seed=0):
    rng = np.random.default_rng(seed)
    normal = lambda *shape: tf.constant(rng.normal(size=shape), tf.float32)  # noqa: E731
    return (normal(T, B, 4 * H), normal(B, H), normal(B, H),
            tf.constant(rng.normal(size=(H, 4 * H)) / np.sqrt(H), tf.float32))


# Odd sizes on purpose: one row (one part), batches that split unevenly over cores, hidden sizes
# that fill no whole vector or panel, and the recipe's own shape.
SHAPES = [(1, 1, 1), (7, 3, 4), (7, 9, 4), (5, 33, 37), (3, 16, 64), (35, 20, 200)]


@pytest.mark.parametrize("T,B,H", SHAPES)
def test_lstm_kernels_equal_the_xla_loops(kernels, references, T, B, H):
    z_x, h0, c0, kernel = lstm_inputs(T, B, H)
    expected = xla_results(references, f"lstm-forward-{T}-{B}-{H}",
                           lambda: lstm._xla(lstm._forward)(z_x, h0, c0, kernel))
    got = kernels.lm_app_lstm_forward(z_x, h0, c0, kernel)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=2e-6)

    rng = np.random.default_rng(1)
    dhs = tf.constant(rng.normal(size=(T, B, H)), tf.float32)
    dc_last = tf.constant(rng.normal(size=(B, H)), tf.float32)
    hs, cs, gates = expected
    dz, dh0, dc0, _ = xla_results(references, f"lstm-backward-{T}-{B}-{H}",
                                  lambda: lstm._xla(lstm._backward)(dhs, dc_last, hs, cs, gates, h0, c0, kernel))
    got = kernels.lm_app_lstm_backward(dhs, dc_last, cs, gates, c0, kernel)
    for a, b in zip(got, (dz, dh0, dc0)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=2e-6)


def test_a_rows_result_does_not_depend_on_how_the_batch_is_split(kernels):
    """Each core takes a share of the rows; a row must come out bit for bit the same alone."""
    z_x, h0, c0, kernel = lstm_inputs(6, 20, 24, seed=2)
    together = kernels.lm_app_lstm_forward(z_x, h0, c0, kernel)
    for row in (0, 9, 10, 19):
        alone = kernels.lm_app_lstm_forward(z_x[:, row:row + 1], h0[row:row + 1], c0[row:row + 1], kernel)
        for a, b in zip(alone, together):
            np.testing.assert_array_equal(a.numpy()[:, 0], b.numpy()[:, row])


def test_lstm_kernels_reject_shapes_that_disagree(kernels):
    z_x, h0, c0, kernel = lstm_inputs(3, 4, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="disagree"):
        kernels.lm_app_lstm_forward(z_x, h0, c0, kernel[:, :-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one step"):
        kernels.lm_app_lstm_forward(z_x[:0], h0, c0, kernel)


def gru_inputs(T, B, H, seed=0):
    rng = np.random.default_rng(seed)
    normal = lambda *shape: tf.constant(rng.normal(size=shape), tf.float32)  # noqa: E731
    return (normal(T, B, 3 * H), normal(B, H), tf.constant(rng.normal(size=(H, 3 * H)) / np.sqrt(H), tf.float32),
            normal(3 * H))


@pytest.mark.parametrize("T,B,H", SHAPES)
def test_gru_kernels_equal_the_xla_loops(kernels, references, T, B, H):
    z_x, h0, kernel, bias = gru_inputs(T, B, H)
    hs, gates = expected = xla_results(references, f"gru-forward-{T}-{B}-{H}",
                                       lambda: gru.xla(gru._forward)(z_x, h0, kernel, bias))
    for a, b in zip(kernels.lm_app_gru_forward(z_x, h0, kernel, bias), expected):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=2e-6)

    dhs = tf.constant(np.random.default_rng(1).normal(size=(T, B, H)), tf.float32)
    expected = xla_results(references, f"gru-backward-{T}-{B}-{H}",
                           lambda: gru.xla(gru._backward)(dhs, hs, gates, h0, kernel))
    for a, b in zip(kernels.lm_app_gru_backward(dhs, hs, gates, h0, kernel), expected):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=2e-6)


def test_gru_kernels_reject_shapes_that_disagree(kernels):
    z_x, h0, kernel, bias = gru_inputs(3, 4, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="disagree"):
        kernels.lm_app_gru_forward(z_x, h0, kernel[:, :-1], bias)
    with pytest.raises(tf.errors.InvalidArgumentError, match="recurrent bias"):
        kernels.lm_app_gru_forward(z_x, h0, kernel, bias[:-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one step"):
        kernels.lm_app_gru_forward(z_x[:0], h0, kernel, bias)


no_bias = tf.zeros([0])


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("vocab,shift", [(1, 0.0), (17, 0.0), (3617, 0.0), (33, -1000.0), (40, 80.0)])
def test_cross_entropy_kernel_equals_the_xla_pass(kernels, vocab, shift, with_bias):
    """Vocabularies that fill no whole vector; rows far below 0, where a tail padded with zeros
    would shift the maximum and count as higher than the label; rows far above."""
    rng = np.random.default_rng(vocab)
    product = tf.constant(rng.normal(size=(50, vocab)) * 3 + shift, tf.float32)
    labels = tf.constant(rng.integers(0, vocab, size=50), tf.int32)
    bias = tf.constant(rng.normal(size=vocab) * 2, tf.float32) if with_bias else no_bias
    logits = product + bias if with_bias else product
    expected = losses._xla_scores(logits, labels, True)
    got = kernels.lm_app_softmax_cross_entropy(product, bias, labels, gradient=True)
    np.testing.assert_allclose(got[0].numpy(), expected[0].numpy(), rtol=1e-6, atol=2e-6)
    np.testing.assert_array_equal(got[1].numpy(), expected[1].numpy())
    np.testing.assert_allclose(got[2].numpy(), expected[2].numpy(), rtol=1e-5, atol=1e-7)
    values, ranks, none = kernels.lm_app_softmax_cross_entropy(product, bias, labels, gradient=False)
    np.testing.assert_array_equal(values.numpy(), got[0].numpy())
    np.testing.assert_array_equal(ranks.numpy(), got[1].numpy())
    assert none.shape == (0, vocab)


def test_cross_entropy_kernel_counts_ties_as_in_top_k(kernels):
    rng = np.random.default_rng(4)
    logits = tf.constant(rng.integers(0, 3, size=(300, 21)), tf.float32)  # ties everywhere
    labels = tf.constant(rng.integers(0, 21, size=300), tf.int32)
    ranks = kernels.lm_app_softmax_cross_entropy(logits, no_bias, labels, gradient=False)[1].numpy()
    for k in (1, 2, 5):
        np.testing.assert_array_equal(ranks < k, tf.math.in_top_k(labels, logits, k).numpy())


def test_cross_entropy_kernel_rejects_a_label_outside_the_vocabulary(kernels):
    logits = tf.zeros((3, 5))
    for bad in (5, -1):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"label {bad} is outside"):
            kernels.lm_app_softmax_cross_entropy(logits, no_bias, tf.constant([0, bad, 1]), gradient=True)


def python(code, env):
    return forked.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


OTHER_CPUS = ["x86-64-v3", "x86-64"]


def native_env(cache, march=None):
    """The environment of a process that builds into ``cache``, for ``march`` (default: this CPU)."""
    env = dict(os.environ, LM_APP_NATIVE_CACHE=str(cache), PYTHONPATH=str(ROOT))
    if march:
        env["LM_APP_NATIVE_MARCH"] = march
    return env


def seed_wrappers(cache):
    """Put this machine's op-wrapper object (if ``make install`` built one) in ``cache``, as a later build finds it.

    The wrappers do not depend on the CPU and take most of a build's time; the
    tests of other CPUs' kernels build only those kernels, as a user's rebuild would.
    """
    kept = native.wrappers_path(native.compiler())
    if native.trusted(kept):
        for path in (kept, Path(f"{kept}.sha256")):
            shutil.copy2(path, cache / path.name)


@pytest.fixture(scope="module")
def first_runs(tmp_path_factory, kernels):
    """Two processes started together on a cache without a library: ``(their (stdout, stderr), return codes, cache)``.

    On x86 they build for the first of OTHER_CPUS, so the test of that CPU's kernels
    reuses this build instead of compiling its own (a build is most of that test's time);
    the other CPU's build shares this cache, so it reuses the op wrappers' object.
    """
    cache = tmp_path_factory.mktemp("first_runs")
    march = OTHER_CPUS[0] if os.uname().machine == "x86_64" else None
    seed_wrappers(cache)
    first = [python("from lm_app import native; print(native.ops() is not None)", native_env(cache, march))
             for _ in range(2)]
    outs = [p.communicate() for p in first]
    return outs, [p.returncode for p in first], cache, march


def test_concurrent_first_runs_build_once_and_later_runs_reuse_the_build(first_runs, forks):
    outs, codes, cache, march = first_runs
    assert codes == [0, 0] and [o for o, _ in outs] == ["True\n", "True\n"], outs
    assert sum("compiling" in err for _, err in outs) == 1  # the lock made the other one wait
    builds = list(cache.glob("*.so"))
    assert len(builds) == 1 and not [p for p in cache.iterdir() if p.is_dir()]  # no temp left
    built_at = builds[0].stat().st_mtime_ns
    _, out, err = forks("from lm_app import native; print(native.ops() is not None)", native_env(cache, march))
    assert out == "True\n" and "compiling" not in err
    assert builds[0].stat().st_mtime_ns == built_at


def test_a_failed_build_falls_back_with_one_line_and_leaves_no_file(tmp_path, forks):
    broken = tmp_path / "c++"
    broken.write_text("#!/bin/sh\necho 'fatal error: this compiler is broken'\nexit 1\n")
    broken.chmod(0o755)
    cache = tmp_path / "cache"
    env = dict(os.environ, CXX=str(broken), LM_APP_NATIVE_CACHE=str(cache), PYTHONPATH=str(ROOT))
    _, out, err = forks("from lm_app import native; print(native.ops())", env)
    assert out == "None\n"
    lines = [line for line in err.splitlines() if line.startswith("lm_app:")]
    assert lines[-1] == ("lm_app: native kernels unavailable (RuntimeError: fatal error: this compiler is "
                         "broken); training uses the slower XLA loops")
    assert not list(cache.glob("*.so")) and not [p for p in cache.iterdir() if p.is_dir()]


@pytest.mark.slow
@pytest.mark.parametrize("march", OTHER_CPUS)
def test_the_kernels_for_other_cpus_equal_the_xla_paths(march, kernels, first_runs, references):
    """This machine's build uses its widest vectors; CI or a user's CPU may have only AVX2
    (x86-64-v3: 8-float vectors, 6-row blocks) or none (x86-64: GCC's generic vector code).
    Each build reruns the kernel and dropout tests against the XLA and TensorFlow paths.
    The first CPU's build is the one ``first_runs`` made; the other is built here, in the
    same cache, with the op wrappers' object that build left."""
    if os.uname().machine != "x86_64":
        pytest.skip("the -march names are x86's")
    *_, cache, built_for = first_runs
    before = set(cache.glob("*.so"))
    (wrappers,) = cache.glob("lm_app_wrappers-*.o")  # the first runs' build made or found it
    wrappers_made = wrappers.stat().st_mtime_ns
    env = dict(native_env(cache, march), LM_APP_TEST_XLA_RESULTS=str(references))
    run = forked.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_native.py",
                      "tests/layers/test_dropout.py", "-k", "not other_cpus and not build and not turns"],
                     cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1]
    # Built for that CPU (the first runs' build, or one new one): a build for another would be one more.
    assert len(set(cache.glob("*.so")) - before) == (march != built_for)
    assert list(cache.glob("lm_app_wrappers-*.o")) == [wrappers] and wrappers.stat().st_mtime_ns == wrappers_made


def test_lm_app_native_0_turns_the_kernels_off(tmp_path, forks):
    env = dict(os.environ, LM_APP_NATIVE="0", LM_APP_NATIVE_CACHE=str(tmp_path), PYTHONPATH=str(ROOT))
    _, out, err = forks("from lm_app import native; print(native.ops())", env)
    assert out == "None\n" and "lm_app:" not in err and not list(tmp_path.iterdir())


# The build and the load, with stand-ins for the compiler: a real build takes seconds, these take none.

def fake_compiler(folder, library, noise=0):
    """A ``$CXX`` that writes ``noise`` bytes of warnings, then "builds" by copying ``library``
    (a real build of the kernels); it fails with a compiler's error line when ``library`` is None.
    Each call's arguments are appended to ``folder / "calls"``."""
    script = folder / "fake-c++"
    build = (f'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
             f'case "$out" in *.o) : > "$out" ;; *) cp "{library}" "$out" ;; esac\n'
             if library else "echo 'error: this compiler is broken' >&2; exit 1\n")
    script.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "fake 1.0"; exit 0; }\n'
                      f'echo "$*" >> "{folder}/calls"\n'
                      f"yes 'warning: unused variable' | head -c {noise}; echo\n" + build)
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def forks():
    """Run Python code in a process that has not loaded the library yet: ``(exit code, stdout, stderr)``.

    Forked from one that imported TensorFlow (tests/forks.py): a TensorFlow import of its own costs seconds.
    """
    def run(code, env):
        done = forked.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # a guard against the deadlock, not a speed limit
        return done.returncode, done.stdout, done.stderr

    return run


@pytest.fixture(scope="module")
def load_in_a_process(forks):
    def load(cxx, cache, setup=""):
        """``(ops loaded?, stderr)`` of a fresh process that builds (if need be) and loads into ``cache``."""
        env = dict(os.environ, CXX=str(cxx), LM_APP_NATIVE_CACHE=str(cache), PYTHONPATH=str(ROOT))
        code, out, err = forks(f"from lm_app import native; {setup}print(native.ops() is not None)", env)
        assert code == 0, err
        return out == "True\n", err

    return load


@pytest.fixture(scope="module")
def real_library(kernels):
    """The real build of this machine (the one the kernel tests loaded)."""
    return native.library_path(native.compiler())


@pytest.fixture(scope="module")
def built(real_library, tmp_path_factory, load_in_a_process):
    """A cache that the copying compiler filled: ``(compiler, cache folder, library path)``."""
    work = tmp_path_factory.mktemp("built")
    cxx, cache = fake_compiler(work, real_library), work / "cache"
    loaded, err = load_in_a_process(cxx, cache)
    assert loaded and "compiling" in err
    (library,) = cache.glob("*.so")
    return cxx, cache, library


def copy_of(built, tmp_path):
    cxx, cache, library = built
    shutil.copytree(cache, tmp_path / "cache", symlinks=True)
    return cxx, tmp_path / "cache", tmp_path / "cache" / library.name


def test_compiler_output_beyond_a_pipe_buffer_does_not_hang_the_build(tmp_path, real_library, load_in_a_process):
    cxx = fake_compiler(tmp_path, real_library, noise=200_000)  # a pipe holds 64 KB
    loaded, err = load_in_a_process(cxx, tmp_path / "cache")
    assert loaded and "compiling" in err
    assert "unused variable" not in err  # the compiler's chatter went to files, which are gone with the build


def test_a_failed_build_of_a_noisy_compiler_reports_its_error_line(tmp_path, load_in_a_process):
    cxx = fake_compiler(tmp_path, None, noise=200_000)
    loaded, err = load_in_a_process(cxx, tmp_path / "cache")
    assert not loaded
    assert err.splitlines()[-1] == ("lm_app: native kernels unavailable (RuntimeError: error: this compiler "
                                    "is broken); training uses the slower XLA loops")


def test_a_build_that_never_ends_is_stopped(tmp_path, load_in_a_process):
    cxx = tmp_path / "stuck-c++"
    cxx.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "stuck 1.0"; exit 0; }\nsleep 100000\n')
    cxx.chmod(0o755)
    loaded, err = load_in_a_process(cxx, tmp_path / "cache", setup="native.BUILD_TIMEOUT = 1; ")
    assert not loaded
    assert err.splitlines()[-1] == ("lm_app: native kernels unavailable (RuntimeError: the compiler ran "
                                    "past 1 s); training uses the slower XLA loops")
    assert not list((tmp_path / "cache").glob("*.so"))


def truncate(path):
    path.write_bytes(path.read_bytes()[:4096])


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same time: only the content says


def group_writable(path):
    path.chmod(path.stat().st_mode | 0o020)


def forget_the_checksum(path):
    Path(f"{path}.sha256").unlink()


def owned_by_nobody(path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize("damage", [truncate, flip_a_byte, group_writable, forget_the_checksum, owned_by_nobody])
def test_a_damaged_or_unsafe_library_gets_a_new_build(built, tmp_path, damage, load_in_a_process):
    cxx, cache, library = copy_of(built, tmp_path)
    good = library.read_bytes()
    damage(library)
    loaded, err = load_in_a_process(cxx, cache)
    assert loaded and "compiling" in err
    assert library.read_bytes() == good
    stat = library.stat()
    assert stat.st_uid == os.geteuid() and not stat.st_mode & 0o022
    loaded, err = load_in_a_process(cxx, cache)  # and, once rebuilt, it is loaded as it is
    assert loaded and "compiling" not in err


@pytest.mark.parametrize("damage", [None, truncate, group_writable, forget_the_checksum])
def test_a_new_build_reuses_the_op_wrappers_object_unless_it_is_damaged(built, tmp_path, damage, load_in_a_process):
    """The wrappers are compiled for the baseline CPU: a build for another CPU or new kernels links the kept object."""
    cxx, cache, library = copy_of(built, tmp_path)
    (wrappers,) = cache.glob("lm_app_wrappers-*.o")
    wrappers.write_bytes(b"an object file" * 300)  # the copying compiler's objects are empty
    Path(f"{wrappers}.sha256").write_text(hashlib.sha256(wrappers.read_bytes()).hexdigest() + "\n")
    if damage:
        damage(wrappers)
    library.unlink()  # as if the kernels had changed: the library is built again
    calls = cxx.parent / "calls"
    calls.unlink(missing_ok=True)  # only this build's calls
    loaded, err = load_in_a_process(cxx, cache)
    assert loaded and "compiling" in err
    compiled = [line.split(" -o ")[-1] for line in calls.read_text().splitlines() if " -c " in line]
    assert sorted(c.rsplit(".so.", 1)[1] for c in compiled) == \
        ["gru.cc.o", "kernels.cc.o", *(["wrappers.cc.o"] if damage else [])]
    link = next(line for line in calls.read_text().splitlines() if "-shared" in line.split())
    assert (str(wrappers) in link.split()) == (damage is None)  # else the new object, then kept
    assert native.trusted(wrappers) and (wrappers.read_bytes() == b"an object file" * 300) == (damage is None)


def test_the_cache_folder_is_made_private_and_its_build_reused(built, tmp_path, load_in_a_process):
    cxx, cache, library = copy_of(built, tmp_path)
    cache.chmod(0o777)
    loaded, err = load_in_a_process(cxx, cache)
    assert loaded and "compiling" not in err
    assert cache.stat().st_mode & 0o777 == 0o700


def test_no_build_is_loaded_from_a_cache_folder_of_another_user(built, tmp_path, load_in_a_process):
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder away")
    cxx, cache, library = copy_of(built, tmp_path)
    os.chown(cache, 65534, 65534)
    loaded, err = load_in_a_process(cxx, cache)
    assert not loaded
    assert err.splitlines()[-1].startswith(f"lm_app: native kernels unavailable (RuntimeError: {cache} belongs to another user")


def test_the_build_lock_does_not_follow_a_symlink(built, tmp_path, load_in_a_process):
    cxx, cache, library = copy_of(built, tmp_path)
    library.unlink()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (cache / ".lock").unlink(missing_ok=True)
    (cache / ".lock").symlink_to(victim)
    loaded, err = load_in_a_process(cxx, cache)
    assert loaded and "compiling" in err
    assert victim.read_text() == "keep me\n"
