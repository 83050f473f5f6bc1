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
        chosen = make(objectives.make_objective, tmp_path / name, objective=name, batch_size=2, bptt=5)
        assert type(chosen) is cls
