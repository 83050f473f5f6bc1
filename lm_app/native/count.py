"""build-dict's counter on the native library (``count.cc``), with :func:`lm_app.text.count_tokens`'s results."""
import ctypes

import numpy as np

from . import counter_library

# The characters outside ASCII whose lowercase holds a character the words rule keeps;
# tests/test_text.py recomputes the list over every code point.
LOWERS_TO_ASCII = ("\u0130", "\u212a")


class NativeCounter:
    """Token counts of the blocks :meth:`add` is given, kept in C++ until :meth:`counts` reads them.

    The C++ side lowercases ASCII only and deletes every other byte, which is
    the rule's result for every character but the few whose ``str.lower`` has
    an ASCII letter (the Kelvin sign is ``k``): a block holding one of those is
    lowercased here first.
    """

    def __init__(self, library):
        self._library = library
        self._handle = library.lm_app_counter_new()

    @classmethod
    def open(cls):
        """A counter, or None where the library cannot be built (count with Python then)."""
        library = counter_library()
        return None if library is None else cls(library)

    def add(self, block, mode="words"):
        if mode == "pretokenized":
            data = block.encode("utf-8", "surrogatepass")
        else:
            if not block.isascii() and any(c in block for c in LOWERS_TO_ASCII):
                block = block.lower()
            data = block.encode("utf-8", "surrogatepass")
        self._library.lm_app_counter_add(self._handle, data, len(data), mode == "pretokenized")

    def counts(self):
        """``{token as UTF-8 bytes: count}``, as :func:`lm_app.text.count_tokens` keys them."""
        size = self._library.lm_app_counter_size(self._handle)
        keys = ctypes.create_string_buffer(self._library.lm_app_counter_key_bytes(self._handle))
        counts = np.empty(size, np.int64)
        self._library.lm_app_counter_dump(self._handle, keys, counts.ctypes.data)
        return dict(zip(keys.raw.split(b"\n")[:size], counts.tolist()))

    def close(self):
        if self._handle:
            self._library.lm_app_counter_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

