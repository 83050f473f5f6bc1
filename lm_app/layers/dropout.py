"""Dropout as one multiplication by a mask, forward and backward.

``keras.layers.Dropout`` computes ``where(keep, x / (1 - rate), 0)``; its
gradient is another ``where`` with a tensor of zeros, so each dropout costs
three passes over the activations in each direction.  Multiplying by a
ready-made mask ``keep / (1 - rate)`` gives the same numbers (same seed, same
uniform draw, same mask) with one pass, and its gradient is one
multiplication too; the recipe's model drops out three [20, 35, 200] tensors
per step.

On a CPU, lm_app's native kernel (:mod:`lm_app.native`) draws TensorFlow's
own Philox numbers for the seed, several counters at once in vector
registers, and applies the mask in the same pass, time-major order
included: the same masks and outputs, bit for bit, as the ops above.

Replicas training together (``--strategy``) each draw the part of the
Philox stream that their rows would have in the whole batch's draw: on
contiguous shares of the rows (the stream objective) they drop out exactly
what one process would, and no two replicas ever share a mask.

Recurrent cells drop out with one mask per sequence instead
(:class:`DropoutMasks`), drawn by :class:`RNN` before its loop.
"""
import keras
from keras import ops

from .. import native


@keras.saving.register_keras_serializable(package="lm_app")
class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` (same arguments, same seed state, same masks), applied as a product."""

    def call(self, inputs, training=False, time_major=False):
        """``time_major``: ``inputs`` is ``[time, batch, ...]``; the mask is drawn as for ``[batch, time, ...]``.

        So a time-major model gets exactly the masks of its batch-major twin.
        (Masks drawn in time-major order are just as random, yet in three
        seeds each the recipe's model ended its 4 epochs with a training
        loss 0.05 higher with them than with these; the cause is not known.)
        """
        if (not training or self.rate == 0 or self.noise_shape is not None
                or keras.backend.backend() != "tensorflow"):
            return super().call(inputs, training=training)
        import tensorflow as tf

        seed = tf.cast(self.seed_generator.next(), tf.int32)
        # The key and counter tf.random.stateless_uniform derives from the seed, and the algorithm.
        key, counter, alg = tf.raw_ops.StatelessRandomGetKeyCounterAlg(seed=seed)
        counter = _replica_counter(counter, inputs)
        kernels = native.ops()
        if kernels is not None:
            return _native_dropout(kernels, inputs, key, counter, self.rate, time_major)
        order = [1, 0, *range(2, inputs.shape.rank)]
        shape = tf.gather(tf.shape(inputs), order) if time_major else tf.shape(inputs)
        draw = tf.raw_ops.StatelessRandomUniformV2(shape=shape, key=key, counter=counter, alg=alg, dtype=inputs.dtype)
        if time_major:
            draw = tf.transpose(draw, order)
        mask = tf.cast(draw >= self.rate, inputs.dtype) * (1 / (1 - self.rate))
        return inputs * tf.stop_gradient(mask)


def _replica_counter(counter, inputs):
    """The Philox counter where this replica's rows start in a draw for every replica's rows (they all match in size).

    Philox gives four numbers per counter step; a replica's share whose size is not a
    multiple of four starts at the next step, still apart from every other's.
    """
    import tensorflow as tf

    from ..distribute import replicas

    index, count = replicas()
    if count == 1:
        return counter
    steps = tf.cast(tf.cast(index, tf.int64) * ((tf.size(inputs, out_type=tf.int64) + 3) // 4), tf.uint64)
    low = counter[0] + steps
    return tf.stack([low, counter[1] + tf.cast(low < steps, tf.uint64)])  # the carry of a 128-bit sum


def _native_dropout(kernels, inputs, key, counter, rate, time_major):
    """The same draw, mask and product in one native pass (see :func:`lm_app.native.ops`)."""
    import tensorflow as tf

    @tf.custom_gradient
    def drop(x):
        y, mask = kernels.lm_app_dropout(x, key, counter, rate=rate, scale=float(1 / (1 - rate)),
                                         time_major=time_major)
        return y, lambda dy: dy * mask

    return drop(inputs)


class DropoutMasks:
    """One dropout mask per sequence for a recurrent cell: ``dropout`` on its input, ``recurrent_dropout`` on ``h``.

    Gal & Ghahramani (2016): the same units stay off at every step.  This is
    what Keras' private ``DropoutRNNCell`` does for its own cells, drawn the
    same way (``keras.random.dropout`` of ones from the cell's
    ``seed_generator``, the input's mask first), so the masks are the same
    bits.  The masks must be drawn before the loop, not inside it, where each
    step would draw anew; ``keras.layers.RNN`` does that only for its own
    cells, hence :class:`RNN`.  The cell needs ``units``, ``dropout``,
    ``recurrent_dropout`` and ``seed_generator``.
    """

    _input_mask = _state_mask = None

    def draw_dropout_masks(self, step_input, state):
        """This sequence's masks, shaped like one step's input and like ``h``."""
        def draw(like, rate):
            if rate == 0:
                return None
            return keras.random.dropout(ops.ones_like(like), rate=rate, seed=self.seed_generator)

        self._input_mask = draw(step_input, self.dropout)
        self._state_mask = draw(state, self.recurrent_dropout)

    def clear_dropout_masks(self):
        self._input_mask = self._state_mask = None

    def dropout_mask(self):
        return self._drawn(self._input_mask)

    def recurrent_dropout_mask(self):
        return self._drawn(self._state_mask)

    def _drawn(self, mask):
        if mask is None:
            raise RuntimeError(f"{type(self).__name__} with dropout trains inside lm_app.layers.RNN, which "
                               "draws one mask per sequence (keras.layers.RNN does not, for our cells)")
        return mask


@keras.saving.register_keras_serializable(package="lm_app")
class RNN(keras.layers.RNN):
    """``keras.layers.RNN`` that also draws a :class:`DropoutMasks` cell's masks before the loop.

    Where and when Keras draws its own cells' masks: on every call, training
    or not, the input's first, so that the seed generators advance as they
    always did and a seed gives the same run.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        cell = self.cell
        if not isinstance(cell, DropoutMasks):
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        state = ops.zeros((ops.shape(sequences)[0], cell.units), dtype=cell.compute_dtype)
        cell.draw_dropout_masks(sequences[:, 0, :], state)
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        finally:
            cell.clear_dropout_masks()
