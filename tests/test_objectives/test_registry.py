"""The registry of objectives (lm_app/objectives/__init__.py): what --objective can name."""
from lm_app import objectives
from lm_app.config import CHOICES
from tests.test_objectives.common import make


def test_every_objective_the_cli_accepts_is_registered_behind_the_interface():
    assert tuple(objectives.OBJECTIVES) == CHOICES["objective"]
    for cls in objectives.OBJECTIVES.values():
        assert issubclass(cls, objectives.Objective) and not cls.__abstractmethods__


def test_the_settings_name_the_objective_train_builds(tmp_path):
    for name, cls in objectives.OBJECTIVES.items():
        # Half held out: the cycle corpus's two files are two dialogues to --objective dialogue.
        chosen = make(objectives.make_objective, tmp_path / name, objective=name, batch_size=2, bptt=5,
                      valid_fraction=0.5, test_fraction=0)
        assert type(chosen) is cls


def test_a_new_objective_is_a_class_and_its_registration(tmp_path, monkeypatch):
    """train.py asks the registry, not a list of names: a class registered under a new name trains and exports."""
    import json

    from lm_app import config
    from lm_app.train import train
    from tests.conftest import tiny_corpus

    class Renamed(objectives.StreamObjective):
        def __init__(self, cfg, vocab, files):
            super().__init__(cfg, vocab, files)
            self.describe = "the renamed objective's data"

    monkeypatch.setitem(objectives.OBJECTIVES, "renamed", Renamed)
    monkeypatch.setitem(config.CHOICES, "objective", (*config.CHOICES["objective"], "renamed"))
    glob, vocab = tiny_corpus(tmp_path, repeats=10)
    lines = []
    cfg = config.TrainConfig(corpus=glob, vocab=str(vocab), model_dir=str(tmp_path / "lm"), objective="renamed",
                             embedding=4, hidden=4, batch_size=4, epochs=1)
    metrics = train(cfg, verbose=0, log=lambda line: lines.append(str(line)))
    assert any("the renamed objective's data" in line for line in lines), lines
    assert metrics["epochs"] == 1 and metrics["valid"]["loss"] > 0
    assert json.loads((tmp_path / "lm" / "config.json").read_text())["objective"] == "renamed"
