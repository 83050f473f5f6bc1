"""The notes' programs: in NumPy as written there, rebuilt on our cells, and the vanishing gradient shown."""
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


@pytest.mark.slow
def test_binary_addition_numpy_is_exact_on_every_pair():
    """The notes' own NumPy program, at its own 10,000 iterations: every sum right (seeds 0-11 all are)."""
    ba = _example("binary_addition_numpy")
    lines = []
    weights, losses = ba.train(iterations=10000, seed=0, report=lines.append)
    a, b = (m.ravel() for m in np.meshgrid(np.arange(128), np.arange(128), indexing="ij"))
    x, _ = ba.sequences(a, b)
    _, out = ba.forward(weights, x)
    sums = ((out[..., 0] > 0.5).astype(int) << np.arange(8)).sum(axis=1)  # bits come LSB first
    assert (sums == a + b).all()  # all 16,384 pairs, decoded to decimal here, not by the example
    assert ba.exact_accuracy(weights) == 1.0
    assert losses[-1000:].mean() < losses[:1000].mean() / 10
    # Every 100 iterations: the loss, Pred:, True: and the decimal sum, as in the notes.
    assert len([line for line in lines if line.startswith("Pred: ")]) == 100
    last_pred, last_true, last_sum = lines[-4:-1]
    assert last_pred == last_true.replace("True", "Pred")
    first, second, total = map(int, re.fullmatch(r"(\d+) \+ (\d+) = (\d+)", last_sum).groups())
    assert first + second == total


def test_binary_addition_numpy_command_line(tmp_path, capsys):
    ba = _example("binary_addition_numpy")
    out = tmp_path / "plots" / "loss.png"
    # 300 iterations are too few to add: exit 1 says so, the plot is written all the same.
    assert ba.main(["--iterations", "300", "--seed", "1", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert printed.count("Pred: ") == 3 and re.search(r"exact sums on all 16384 pairs below 128: "
                                                      r"\d+\.\d+%", printed)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["loss.png"]  # no temporary left behind


@pytest.mark.slow
def test_sine_wave_numpy_runs_free_for_200_steps(tmp_path, capsys):
    sw = _example("sine_wave_numpy")
    out = tmp_path / "sine.png"
    assert sw.main(["--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    test_losses = [float(v) for v in re.findall(r"test loss ([0-9.]+)", printed)]
    assert len(test_losses) == 30 and test_losses[-1] < 0.002  # the noise alone costs about 0.0002
    match = re.search(r"free-run MAE over 200 steps: ([0-9.]+), over the first period "
                      r"\(21 steps\): ([0-9.]+)", printed)
    assert match, printed[-500:]
    # Measured 0.221 and 0.165 with this seed (0.08-0.85 and 0.09-0.23 over seeds 0-5, the
    # long run drifting in phase); predicting 0 scores about 0.64, the last value about 0.9.
    assert float(match.group(1)) < 0.35 and float(match.group(2)) < 0.25
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_sine_wave_numpy_keeps_oscillating():
    """The free run neither dies out nor blows up: the failure a 2-value window risks."""
    sw = _example("sine_wave_numpy")
    weights, observed, _, _ = sw.train(seed=3, report=None)
    run = sw.free_run(weights, observed[-2:], 200)
    assert 1.5 < np.ptp(run[-50:]) < 2.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lstm_error_fades_far_slower_than_the_simple_rnns(seed):
    vg = _example("vanishing_gradient")
    rnn, lstm = (vg.gradient_norms(arch, units=16, steps=100, sequences=4, seed=seed)
                 for arch in ("rnn", "lstm"))
    # Through tanh (derivative <= 1) and an orthogonal U, one step back cannot grow the error.
    assert 0.5 < rnn[0] <= 1.0 + 1e-6
    # Both vanish over 100 steps...
    assert rnn[99] < 1e-15 and lstm[99] < 1e-6
    # ...but the carousel keeps the LSTM's far larger, and the gap widens with k: measured
    # 6e3-1e5 times at k = 50 and 2e9-3e10 times at k = 100 over seeds 0-4.
    assert lstm[49] > 100 * rnn[49] and lstm[99] > 1e6 * rnn[99]


def test_vanishing_gradient_command_line(tmp_path, capsys):
    vg = _example("vanishing_gradient")
    out = tmp_path / "vg.png"
    assert vg.main(["--units", "8", "--sequences", "2", "--steps", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header, *rows = printed.splitlines()[:5]
    assert header.split() == ["k", "rnn", "lstm", "gru", "0.25^k"]
    assert [row.split()[0] for row in rows] == ["1", "10", "20", "30"]
    assert rows[0].split()[-1] == "2.500e-01"
    assert "sigmoid'(a) <= 0.25" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
