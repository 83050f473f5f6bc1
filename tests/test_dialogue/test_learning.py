"""HRED answers from the first turn of its context, which a decoder reading only the last turn cannot."""
import keras
import numpy as np
import tensorflow as tf

from lm_app.dialogue.data import Examples
from lm_app.dialogue.models import DialogueModel

KEYS, ANSWERS, NOISE = range(2, 6), range(6, 10), range(10, 18)  # ids; 0 <pad>, 1 <unk>
VOCAB = 18


def dialogues(n, seed):
    """Turn 1: a key word; turn 2: three random words (noise); turn 3: the key's answer word."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, len(KEYS), n)
    return [[[KEYS[k]], rng.choice(NOISE, 3).tolist(), [ANSWERS[k]]] for k in keys]


def answer_accuracy(last_turn_only, steps=200):
    """Train a tiny HRED on 2-turn contexts (or on the last turn alone); its held-out first-word accuracy."""
    keras.utils.set_random_seed(7)
    model = DialogueModel(VOCAB, "hred", "gru", embedding=16, hidden=32, seed=7).build_all(2, 4)
    optimizer = keras.optimizers.Adam(0.02)

    def seen(x):
        return x[:, -1:] if last_turn_only else x

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            token_losses = model.token_losses(seen(x), y, training=True)[0]
            loss = tf.reduce_mean(token_losses)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    train = Examples(dialogues(256, seed=1), 2, 3, VOCAB).batches(32, shuffle=True, seed=2).repeat()
    for x, y in train.take(steps):
        train_step(x, y)
    x, y = next(iter(Examples(dialogues(200, seed=3), 2, 3, VOCAB).batches(200)))
    logits = model.forward(seen(x), y)[0]
    return float(np.mean(np.argmax(logits[:, 0], axis=-1) == y[:, 0]))


def test_hred_learns_an_answer_set_by_the_first_turn_and_a_last_turn_decoder_does_not():
    hred, last_turn = answer_accuracy(False), answer_accuracy(True)
    print(f"answer accuracy: HRED {hred:.0%}, last turn only {last_turn:.0%} (chance 25%)")
    assert hred > 0.9
    assert last_turn < 0.45
