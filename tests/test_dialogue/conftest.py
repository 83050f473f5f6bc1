"""The dialogue tests' shared model: one tiny VHRED, trained once for the package."""
import pytest

from lm_app.config import TrainConfig
from lm_app.train import train
from tests.test_dialogue.common import synthetic_dialogues, vocabulary, write_dialogues


@pytest.fixture(scope="package")
def vhred(tmp_path_factory):
    """A tiny VHRED trained for 1 epoch by ``train`` (in this process, to spare a TensorFlow start): its folder."""
    work = tmp_path_factory.mktemp("vhred")
    corpus_file = write_dialogues(work / "dialogues.txt", synthetic_dialogues())
    vocabulary(corpus_file).save(work / "vocab.txt")
    cfg = TrainConfig(corpus=str(corpus_file), vocab=str(work / "vocab.txt"), model_dir=str(work / "model"),
                      objective="dialogue", arch="vhred", cell="lstm", embedding=8, hidden=8, epochs=1,
                      batch_size=16, kl_anneal_steps=10, seed=5)
    train(cfg, verbose=0, log=lambda line: None)
    return work / "model"
