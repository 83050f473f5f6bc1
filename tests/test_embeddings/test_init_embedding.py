"""train --init-embedding / --freeze-embedding: a language model's embedding started from word2vec vectors."""
import json

import numpy as np
import pytest

from lm_app import corpus, pretrained
from lm_app.objectives import StreamObjective, WindowObjective
from lm_app.objectives.dialogue import DialogueObjective
from lm_app.word2vec.vectors import write_vectors
from tests.conftest import (assert_one_line_error, cycle_corpus, main_in_process, run_cli_in_process, tiny_corpus,
                            train_cli)
from tests.test_objectives.common import make


def vectors_for(path, tokens, dim, seed=0):
    """A vectors file for the vocabulary's words but its last, plus a word it lacks: ``{word: vector}``."""
    words = list(tokens[2:-1]) + ["notinthevocabulary"]
    vectors = np.random.default_rng(seed).normal(0, 1, (len(words), dim)).astype(np.float32)
    write_vectors(path, words, vectors)
    return dict(zip(words, vectors))


def assert_rows_start_from(model, tokens, given):
    for variable in pretrained.embedding_variables(model):
        table = variable.numpy()
        for i, token in enumerate(tokens):
            if token in given:
                np.testing.assert_array_equal(table[i], given[token])
            else:  # <pad>, <unk> and the word the file lacks keep their random start
                assert not any(np.array_equal(table[i], v) for v in given.values())


@pytest.mark.parametrize("cls, settings", [
    (WindowObjective, {"arch": "rnn"}),
    (WindowObjective, {"arch": "attention"}),
    (WindowObjective, {"arch": "seq2seq", "target_len": 2}),
    (StreamObjective, {"objective": "stream", "arch": "lstm", "tied": True, "batch_size": 4, "bptt": 5}),
    (DialogueObjective, {"objective": "dialogue", "arch": "hred", "cell": "gru", "valid_fraction": 0.5,
                         "test_fraction": 0}),  # the corpus's two files are its two dialogues
])
def test_every_embedding_starts_from_the_vectors(tmp_path, cls, settings):
    """#15: each architecture's embedding (both of seq2seq's) holds the file's vector for every word it has."""
    glob = str(cycle_corpus(tmp_path / "c", repeats=20) / "*.txt")  # the corpus make() trains on
    tokens = corpus.build_vocabulary(glob, min_count=0).tokens
    given = vectors_for(tmp_path / "vectors.txt", tokens, 4)
    objective = make(cls, tmp_path, build=True, init_embedding=str(tmp_path / "vectors.txt"), **settings)
    assert len(pretrained.embedding_variables(objective.model)) == (2 if settings["arch"] == "seq2seq" else 1)
    assert_rows_start_from(objective.model, tokens, given)
    assert f"embedding: {len(given) - 1} of the vocabulary's {len(tokens)} entries start from" in objective.describe
    assert all(v.trainable for v in pretrained.embedding_variables(objective.model))


def test_a_frozen_embedding_leaves_training(tmp_path):
    glob = str(cycle_corpus(tmp_path / "c", repeats=20) / "*.txt")
    vectors_for(tmp_path / "vectors.txt", corpus.build_vocabulary(glob, min_count=0).tokens, 4)
    objective = make(WindowObjective, tmp_path, build=True, init_embedding=str(tmp_path / "vectors.txt"),
                     freeze_embedding=True)
    [embedding] = pretrained.embedding_variables(objective.model)
    assert embedding.path not in {v.path for v in objective.model.trainable_variables}
    assert "frozen" in objective.describe


def test_train_keeps_a_frozen_embedding_as_the_file_gave_it(tmp_path):
    """#15: after training with --freeze-embedding the trained weights still hold the file's vectors."""
    glob, vocab = tiny_corpus(tmp_path, repeats=20)
    tokens = corpus.Vocabulary.load(vocab).tokens
    given = vectors_for(tmp_path / "vectors.txt", tokens, 8)
    proc = train_cli(glob, vocab, tmp_path / "lm", "--epochs", 1, "--embedding", 8, "--hidden", 8,
                     "--init-embedding", tmp_path / "vectors.txt", "--freeze-embedding", run=run_cli_in_process)
    assert f"embedding: {len(given) - 1} of the vocabulary's {len(tokens)} entries start from" in proc.stdout

    from lm_app import models
    from lm_app.config import TrainConfig

    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    model = models.model_from_config(TrainConfig.from_dict(config), len(tokens))
    model.load_weights(tmp_path / "lm" / "checkpoints" / "best.weights.h5")
    assert_rows_start_from(model, tokens, given)


@pytest.mark.parametrize("flags, fragment", [
    (["--embedding", "8"], "holds 4-dimensional vectors: --embedding must match, got 8"),
    (["--embedding", "onehot"], "--init-embedding needs an embedding layer"),
    (["--preset", "notes"], "--init-embedding needs an embedding layer"),
    (["--embedding", "4", "--hidden", "4", "--objective", "stream", "--tied", "--freeze-embedding"],
     "--freeze-embedding and --tied do not go together"),
])
def test_vectors_that_cannot_start_the_embedding_are_refused_before_training(tmp_path, flags, fragment, capsys):
    write_vectors(tmp_path / "v.txt", ["a", "b"], np.ones((2, 4), np.float32))
    code, _, err = main_in_process("train", "--init-embedding", tmp_path / "v.txt", *flags, capsys=capsys)
    assert_one_line_error(code, err, "train", fragment)


def test_freezing_needs_vectors_and_a_bad_file_is_named(tmp_path, capsys):
    code, _, err = main_in_process("train", "--freeze-embedding", capsys=capsys)
    assert_one_line_error(code, err, "train", "--freeze-embedding acts with --init-embedding only")
    (tmp_path / "v.txt").write_text("not a header\n")
    for path, fragment in ((tmp_path / "none.txt", "no word vectors file"),
                           (tmp_path / "v.txt", "first line should be 'count dimension'")):
        code, _, err = main_in_process("train", "--init-embedding", path, capsys=capsys)
        assert_one_line_error(code, err, "train", fragment)
        assert "--init-embedding: " in err
