"""The window objective through the Objective interface (lm_app/objectives/window.py)."""
import numpy as np
import pytest

from lm_app.errors import UsageError
from lm_app.objectives import WindowObjective
from tests.test_objectives.common import assert_adaptive_softmax_trains, assert_same_batches, make


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return make(WindowObjective, tmp_path_factory.mktemp("window"), build=True, batch_size=8)


def test_the_batches_from_a_position_are_the_tail_of_the_epochs(window):
    """Resuming at step s skips s batches: it must meet the very batches the epoch would have given."""
    epoch = list(window.batches(1, 0))
    assert len(epoch) == window.n_train > 3
    assert_same_batches(window.batches(1, 3), epoch[3:])


def test_each_epoch_shuffles_the_same_windows_in_its_own_order(window):
    one, two = (np.concatenate([x for x, _ in window.batches(epoch, 0)]) for epoch in (1, 2))
    assert not np.array_equal(one, two)
    assert sorted(map(tuple, one)) == sorted(map(tuple, two))


def test_evaluate_steps_through_every_batch_of_the_part(window):
    for split in ("valid", "test"):
        seen = []
        window.evaluate(lambda x, y: seen.append((x, y)), split)
        assert_same_batches(seen, window.held_out[split])


def test_token_losses_score_each_window_and_keep_no_state(window):
    x, y = next(iter(window.batches(0, 0)))
    token_losses, ranks = window.token_losses(x, y, training=False)
    assert token_losses.shape == ranks.shape == (8,)
    assert np.all(token_losses.numpy() > 0) and np.all(ranks.numpy() >= 0)
    assert window.state_variables() == []


def test_a_corpus_too_small_for_its_parts_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="too small for windows of 200 words plus validation and test parts"):
        make(WindowObjective, tmp_path, window=200)


def test_the_adaptive_softmax_trains_on_windows_with_and_without_native_kernels(tmp_path, native_or_xla):
    window = make(WindowObjective, tmp_path, build=True, arch="lstm", batch_size=8, softmax="adaptive",
                  cutoffs=(4, 10))
    x, y = next(iter(window.batches(0, 0)))
    assert_adaptive_softmax_trains(window, x, y)
    np.testing.assert_allclose(np.exp(window.model(x).numpy()).sum(-1), 1, atol=1e-5)
