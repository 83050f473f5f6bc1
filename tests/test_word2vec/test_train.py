"""Training on a corpus with planted structure, both modes and both paths; interrupt and resume."""
import numpy as np
import pytest

from lm_app.errors import UsageError
from lm_app.word2vec.config import Word2VecConfig
from lm_app.word2vec.train import state_dir, train

from tests.conftest import native_or_xla  # noqa: F401  (a fixture: the kernel, then the portable path)
from tests.test_word2vec import nearest_in_group, planted_corpus


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_corpus(tmp_path_factory.mktemp("planted"))


def config(planted, out, **kw):
    glob, vocab = planted
    settings = dict(corpus=glob, vocab=str(vocab), out=str(out), dim=16, sample=0, epochs=3, seed=5)
    return Word2VecConfig(**{**settings, **kw})


@pytest.mark.parametrize("mode", ["cbow", "skipgram"])
def test_planted_groups_are_nearest_each_other(planted, tmp_path, mode, native_or_xla):  # noqa: F811
    result = train(config(planted, tmp_path / "w2v", mode=mode), verbose=0, log=lambda *a: None)
    assert result["native"] == (native_or_xla == "native")
    assert nearest_in_group(result["words"], result["vectors"]) == 1.0
    lines = (tmp_path / "w2v" / "vectors.txt").read_text().splitlines()
    assert lines[0] == "12 16" and len(lines) == 13
    word, *values = lines[1].split()
    np.testing.assert_allclose([float(v) for v in values], result["vectors"][0], rtol=1e-5, atol=1e-7)


class Interrupt(Exception):
    pass


def test_interrupted_then_resumed_equals_uninterrupted(planted, tmp_path):
    """Ctrl-C mid-epoch saves; --resume finishes with the vectors an uninterrupted run reaches (1 thread)."""
    settings = dict(threads=1, batch_words=1000, save_every=100)  # a file a batch; only Ctrl-C saves mid-epoch
    whole = train(config(planted, tmp_path / "whole", **settings), verbose=0, log=lambda *a: None)
    batches = []

    def stop(progress):
        batches.append(progress)
        if len(batches) == 6:  # mid-epoch 2 (4 batches an epoch)
            raise KeyboardInterrupt

    cfg = config(planted, tmp_path / "cut", **settings)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, verbose=0, log=lambda *a: None, on_batch=stop)
    assert (state_dir(cfg.out) / "checkpoints").is_dir() and not (tmp_path / "cut" / "vectors.txt").exists()
    with pytest.raises(UsageError, match="unfinished run: add --resume"):
        train(cfg, verbose=0, log=lambda *a: None)  # a forgotten flag never throws the run away
    with pytest.raises(UsageError, match="--dim 8 differs from the run"):
        train(config(planted, tmp_path / "cut", dim=8), resume=True, given={"dim"}, verbose=0, log=lambda *a: None)
    resumed = train(cfg, resume=True, verbose=0, log=lambda *a: None)
    assert resumed["trained_words"] == whole["trained_words"]
    np.testing.assert_array_equal(resumed["vectors"], whole["vectors"])


def test_a_corpus_without_words_leaves_no_unfinished_run(planted, tmp_path):
    (tmp_path / "empty.txt").write_text("zebra 42\n")
    with pytest.raises(UsageError, match="no word of the vocabulary"):
        train(config(planted, tmp_path / "w2v", corpus=str(tmp_path / "empty.txt")), verbose=0, log=lambda *a: None)
    result = train(config(planted, tmp_path / "w2v", epochs=1), verbose=0, log=lambda *a: None)  # no --fresh needed
    assert len(result["words"]) == 12
