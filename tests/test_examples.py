"""The notes' two exercises, rebuilt on our cells, at a size that trains in seconds."""
import importlib.util
import re

import numpy as np
import pytest

from tests.conftest import ROOT


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_binary_addition_is_exact_on_every_pair():
    ba = _example("binary_addition")
    model, accuracy, epochs = ba.train(units=16, train_pairs=2048, max_epochs=40, seed=0)
    a, b = ba.all_pairs()
    assert len(a) == 128 * 128 and a.max() == b.max() == 127
    # Scored again here rather than trusted from the training callback.
    assert ba.exact_accuracy(model, a, b) == accuracy == 1.0
    assert epochs < 40  # it stopped because every sum was right, not because time ran out
    # The encoding itself: least significant bit first, and back.
    assert ba.to_bits(np.array([6]))[0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert ba.from_bits(ba.to_bits(a + b)).tolist() == (a + b).tolist()


@pytest.mark.slow
def test_sine_wave_runs_free_for_200_steps(tmp_path, capsys):
    sw = _example("sine_wave")
    out = tmp_path / "plots" / "sine.png"
    assert sw.main(["--units", "16", "--epochs", "10", "--samples", "600", "--seed", "0",
                    "--out", str(out)]) == 0
    match = re.search(r"free-run MAE over 200 steps: ([0-9.]+)", capsys.readouterr().out)
    assert match, "no MAE printed"
    # Measured 0.023 with this seed (0.022-0.057 over seeds 0-3); a model that has not learnt
    # the wave, e.g. one predicting 0, scores about 0.64.
    assert float(match.group(1)) < 0.1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["sine.png"]  # no temporary left behind
