"""Process-level helpers: argument types, and loading TensorFlow quietly.

It imports nothing of lm_app, so the library modules can load TensorFlow
without importing ``cli``, which sits on top of them all.
"""
import argparse
import contextlib
import os
import signal
import sys
import threading
import time


def non_negative_int(value):
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return n


def port_number(value):
    n = int(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return n


@contextlib.contextmanager
def interrupts_held():
    """Hold a Ctrl-C that lands in the block until its end: what the block changes, it changes whole.

    A KeyboardInterrupt raised inside TensorFlow's own context managers (the
    device scopes of the checkpoint writer) leaves their scope stack broken:
    it surfaced as a RuntimeError, not an interrupt, and the state was not saved.
    (Only the main thread can hold signals; elsewhere the block just runs.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda *_: held.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(signal.SIGINT, None)  # the usual handler: KeyboardInterrupt


@contextlib.contextmanager
def quiet_stderr():
    """Hide what TensorFlow's C++ side prints while it loads (it ignores TF_CPP_MIN_LOG_LEVEL then)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
        import keras  # noqa: F401
    return tf


class ByteProgress:
    """A one-line progress bar on a terminal; silent when stderr is a file or pipe."""

    def __init__(self, total, label):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.enabled = sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, nbytes):
        self.done += nbytes
        if self.enabled:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            rate = self.done / 1e6 / max(time.monotonic() - self.start, 1e-9)
            print(f"\r{self.label} [{bar:<30}] {share:4.0%} {rate:6.1f} MB/s", end="", file=sys.stderr)

    def close(self):
        if self.enabled:
            print(file=sys.stderr)
