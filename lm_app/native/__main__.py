"""``python -m lm_app.native``: build the native libraries now (``make install`` does); exit 1 if they cannot be."""
import sys

from ..process import import_tensorflow
from . import compiler, counter_library, library_path, ops

import_tensorflow()  # quietly: TensorFlow's C++ start-up lines are not this command's output
if ops() is None or counter_library() is None:
    sys.exit(1)
print(f"lm_app: native kernels ready in {library_path(compiler()).parent}", file=sys.stderr)
