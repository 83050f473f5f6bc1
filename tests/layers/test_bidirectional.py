"""bidirectional(): a forward and a backward pass over each row's real steps, concatenated."""
import keras
import numpy as np
import pytest

from lm_app.layers import CELLS, GRUCell, LSTMCell, bidirectional

from .common import FEATURES, UNITS, masked_batch, randomize


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("arch", sorted(CELLS))
def test_concatenates_forward_and_backward_runs(arch, return_sequences):
    x, mask = masked_batch(seed=4)
    layer = bidirectional(lambda: CELLS[arch](UNITS), return_sequences=return_sequences)
    layer(x, mask=mask)  # builds it
    randomize(layer)
    got = layer(x, mask=mask).numpy()
    assert got.shape[-1] == 2 * UNITS

    # The reference: plain forward RNNs with the same weights, run row by row on the real
    # steps only, once in order and once reversed; no mask, no go_backwards involved.
    forward = keras.layers.RNN(CELLS[arch](UNITS), return_sequences=True)
    backward = keras.layers.RNN(CELLS[arch](UNITS), return_sequences=True)
    forward(x[:1])
    backward(x[:1])
    forward.set_weights(layer.forward_layer.get_weights())
    backward.set_weights(layer.backward_layer.get_weights())
    for row in range(len(x)):
        steps = np.flatnonzero(mask[row])
        real = x[row:row + 1, steps]
        fwd = forward(real).numpy()[0]
        bwd = backward(real[:, ::-1]).numpy()[0][::-1]  # bwd[k]: read from the end back to k
        if return_sequences:
            want = np.zeros((x.shape[1], 2 * UNITS), "float32")  # padded steps output zeros
            want[steps] = np.concatenate([fwd, bwd], axis=-1)
        else:
            want = np.concatenate([fwd[-1], bwd[0]])
        np.testing.assert_allclose(got[row], want, rtol=0, atol=1e-5, err_msg=f"row {row}")


def test_directions_have_their_own_cells():
    layer = bidirectional(lambda: LSTMCell(UNITS, peephole=True))
    layer(masked_batch()[0])
    assert layer.forward_layer.cell is not layer.backward_layer.cell
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert not np.array_equal(layer.forward_layer.cell.kernel.numpy(),
                              layer.backward_layer.cell.kernel.numpy())


def test_saves_and_loads(tmp_path):
    inputs = keras.Input((None, FEATURES))
    outputs = bidirectional(lambda: GRUCell(UNITS), return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    x = masked_batch()[0]
    model.save(tmp_path / "bi.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "bi.keras")(x).numpy(),
                                  model(x).numpy())
