"""The dialogue tests' shared model: one tiny VHRED, trained once for the run."""
import pytest

from lm_app.config import TrainConfig
from lm_app.train import train
from tests.conftest import built_once
from tests.test_dialogue.common import synthetic_dialogues, vocabulary, write_dialogues


@pytest.fixture(scope="session")
def vhred(tmp_path_factory):
    """A tiny VHRED trained for 1 epoch by ``train`` (in this process, to spare a TensorFlow start): its folder.

    Trained once for the whole run (:func:`tests.conftest.built_once`): three test files
    read it, and the two workers would otherwise train it twice.  Tests only read it.
    """
    def build(work):
        corpus_file = write_dialogues(work / "dialogues.txt", synthetic_dialogues())
        vocabulary(corpus_file).save(work / "vocab.txt")
        cfg = TrainConfig(corpus=str(corpus_file), vocab=str(work / "vocab.txt"), model_dir=str(work / "model"),
                          objective="dialogue", arch="vhred", cell="lstm", embedding=8, hidden=8, epochs=1,
                          batch_size=16, kl_anneal_steps=10, seed=5)
        train(cfg, verbose=0, log=lambda line: None)

    return built_once(tmp_path_factory, "vhred", build) / "model"
