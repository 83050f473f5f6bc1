"""Process-level helpers: Ctrl-C held through a block."""
import os
import signal
import threading

import pytest

from lm_app.process import interrupts_held


def test_a_ctrl_c_inside_the_block_lands_after_it():
    """What the block changes, it changes whole: the interrupt waits for the block's end."""
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("the rest of the block")
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_a_ctrl_c_leaves_the_handler_as_it_was():
    with interrupts_held():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_the_block_just_runs():
    """Only the main thread may set a signal handler; elsewhere holding is not possible, and not tried."""
    seen = []

    def block():
        with interrupts_held():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
