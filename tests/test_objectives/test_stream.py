"""The stream objective through the Objective interface (lm_app/objectives/stream.py)."""
import numpy as np
import pytest

from lm_app import data
from lm_app.errors import UsageError
from lm_app.objectives import StreamObjective
from tests.test_objectives.common import assert_adaptive_softmax_trains, assert_same_batches, make

ROWS, BPTT = 2, 5


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return make(StreamObjective, tmp_path_factory.mktemp("stream"), build=True, objective="stream",
                arch="lstm", layers=2, bptt=BPTT, batch_size=ROWS)


def values(variables):
    return [v.numpy().copy() for v in variables]


def test_the_batches_from_a_position_are_the_tail_of_every_epochs(stream):
    """Contiguous chunks in the same order each epoch (the state runs along the rows): skip s = the tail."""
    epoch = list(stream.batches(0, 0))
    assert len(epoch) == stream.n_train > 3
    assert_same_batches(stream.batches(4, 0), epoch)
    assert_same_batches(stream.batches(0, 3), epoch[3:])


def test_the_carried_state_is_checkpointed_and_reset_at_each_epoch(stream):
    assert len(stream.state_variables()) == 2 * 2  # an LSTM's h and c per layer
    stream.start_epoch()
    x, y = next(iter(stream.batches(0, 0)))
    token_losses, ranks = stream.token_losses(x, y, training=False)
    assert token_losses.shape == ranks.shape == (ROWS * BPTT,)  # every position of each row predicts
    assert all(np.abs(s).max() > 0 for s in values(stream.state_variables()))
    stream.start_epoch()
    assert all(not s.any() for s in values(stream.state_variables()))


def test_evaluate_reads_the_part_from_a_zero_state_and_gives_the_training_state_back(stream):
    stream.start_epoch()
    stream.token_losses(*next(iter(stream.batches(0, 0))), training=False)
    carried = values(stream.state_variables())
    seen, starts = [], []

    def step(x, y):
        if not seen:
            starts.extend(values(stream.state_variables()))
        seen.append((x, y))
        stream.token_losses(x, y, training=False)

    stream.evaluate(step, "valid")
    assert starts and all(not s.any() for s in starts)
    assert_same_batches(seen, data.stream_chunks(stream.held_out["valid"], BPTT))
    for now, before in zip(values(stream.state_variables()), carried, strict=True):
        np.testing.assert_array_equal(now, before)


def test_too_many_rows_for_the_corpus_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="too small for 200 rows plus validation and test parts"):
        make(StreamObjective, tmp_path, objective="stream", batch_size=200)


def test_the_adaptive_softmax_trains_on_the_stream_with_and_without_native_kernels(tmp_path, native_or_xla):
    """#17.1: the carried state restarts before each of the two scorings, so they read the same chunk alike."""
    stream = make(StreamObjective, tmp_path, build=True, objective="stream", arch="lstm", bptt=BPTT,
                  batch_size=ROWS, softmax="adaptive", cutoffs=(4, 10))
    assert_adaptive_softmax_trains(stream, *next(iter(stream.batches(0, 0))))
