"""The Trainer's compiled steps (lm_app/trainer.py)."""
import numpy as np
import tensorflow as tf

from lm_app import corpus
from lm_app.config import TrainConfig
from lm_app.objectives import StreamObjective
from lm_app.trainer import Trainer
from tests.conftest import cycle_corpus


def test_several_steps_in_one_call_equal_one_call_per_step(tmp_path):
    """The training loop runs many steps per call of its graph: they must be exactly the single steps,
    the epoch's short last chunk included, and the call must count the tokens it predicted."""
    glob = str(cycle_corpus(tmp_path / "c", repeats=3) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=0)
    cfg = TrainConfig(corpus=glob, vocab="unused", model_dir=str(tmp_path / "m"), objective="stream",
                      arch="lstm", layers=2, embedding=8, hidden=8, bptt=7, batch_size=4, dropout=0.3,
                      optimizer="sgd", learning_rate=1.0, clip_norm=0.5, seed=5)
    files = corpus.find_files(glob)

    def trainer():
        t = Trainer(StreamObjective(cfg, vocab, files), len(vocab), cfg)
        t.objective.start_epoch()
        return t

    one, many = trainer(), trainer()
    n = one.objective.n_train
    chunks = list(one.objective.batches(0, 0))
    assert len(chunks) == n >= 4 and chunks[-1][1].shape[1] < cfg.bptt  # a short last chunk
    for x, y in chunks:
        one.train_step(x, y)
    batches = iter(many.objective.batches(0, 0))
    counted = [int(many.train_steps(batches, tf.constant(k))) for k in (1, n - 3, 2)]
    assert counted == [4 * cfg.bptt, 4 * cfg.bptt * (n - 3), 4 * cfg.bptt + chunks[-1][1].shape.num_elements()]
    assert int(many.step.numpy()) == int(one.step.numpy()) == n
    state = lambda t: [v.numpy() for v in [*t.model.variables, *t.optimizer.variables,  # noqa: E731
                                           *t.objective.state_variables(), t.train_metrics.sums]]
    for a, b in zip(state(one), state(many), strict=True):
        np.testing.assert_array_equal(a, b)
