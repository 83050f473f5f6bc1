"""The dialogue objective behind train.py's loop: batches, held-out parts and the tokens it counts."""
import numpy as np
import tensorflow as tf

from lm_app import corpus
from lm_app.config import TrainConfig
from lm_app.objectives import make_objective
from lm_app.trainer import Trainer
from tests.test_dialogue.common import synthetic_dialogues, vocabulary, write_dialogues


def test_the_loop_counts_response_tokens_not_padding(tmp_path):
    turns = ["a b c d", "e", "f g", "h i j", "a"]
    path = write_dialogues(tmp_path / "c.txt", [turns[d % 3:] for d in range(20)])
    vocab = vocabulary(path)
    cfg = TrainConfig(corpus=str(path), objective="dialogue", arch="hred", embedding=4, hidden=4, batch_size=4,
                      max_turn_words=3, valid_fraction=0.2, test_fraction=0, seed=1)
    objective = make_objective(cfg, vocab, corpus.find_files(cfg.corpus))
    assert set(objective.held_out) == {"valid"} and len(objective.held_out["valid"]) > 0
    trainer = Trainer(objective, len(vocab), cfg)
    responses = [y.numpy() for _, y in objective.batches(0, 0)]
    assert len(responses) == objective.n_train
    real = sum(int(np.count_nonzero(y)) for y in responses)
    assert real < sum(y.size for y in responses)  # some responses are padded
    counted = int(trainer.train_steps(iter(objective.batches(0, 0)), tf.constant(objective.n_train)))
    assert counted == real
    assert trainer.train_metrics.result()["loss"] > 0


def test_a_vhred_run_resumed_from_a_checkpoint_ends_where_the_uninterrupted_one_does(tmp_path):
    """The KL schedule's step and the word-drop seeds are model variables: the loop's checkpoint keeps them."""
    import keras

    path = write_dialogues(tmp_path / "c.txt", synthetic_dialogues(n=30))
    vocab = vocabulary(path)
    cfg = TrainConfig(corpus=str(path), objective="dialogue", arch="vhred", embedding=4, hidden=4, batch_size=8,
                      kl_anneal_steps=5, word_drop=0.5, valid_fraction=0.2, test_fraction=0, seed=3)

    def trainer():
        keras.utils.set_random_seed(cfg.seed)
        return Trainer(make_objective(cfg, vocab, corpus.find_files(cfg.corpus)), len(vocab), cfg)

    def train(t, skip, count):
        t.train_steps(iter(t.objective.batches(0, skip)), tf.constant(count))

    straight, first, resumed = trainer(), trainer(), trainer()
    n = straight.objective.n_train
    train(straight, 0, n)
    train(first, 0, 2)
    saved = first.checkpoint(tf.Variable("{}")).write(str(tmp_path / "ckpt" / "state"))
    resumed.checkpoint(tf.Variable("{}")).read(saved).assert_consumed()
    train(resumed, 2, n - 2)
    assert float(straight.model.kl_step) == float(resumed.model.kl_step) == n
    for a, b in zip(straight.model.variables, resumed.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
