"""``python -m lm_app.native``: build the native kernels now (``make install`` does), exit 1 if they cannot be."""
import sys

from . import ops

sys.exit(0 if ops() is not None else 1)
