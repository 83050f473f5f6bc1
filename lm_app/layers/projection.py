"""``x W + b`` over a whole sequence, with a backward pass that does the urgent matmul first.

The gradient of ``y = x W + b`` has two large matmuls, ``dx = dy W^T`` and
``dW = x^T dy``.  Only ``dx`` is on the critical path: the recurrent layer
below waits for it before its own backward loop can start, while nothing
waits for ``dW`` until the optimizer runs.  Left to itself, TensorFlow runs
both at once and they share the two cores, so ``dx`` arrives late.  Here
``dW`` starts only after ``dx``, and overlaps the loop below, which uses one
core.
(The stream model's softmax layer now trains through
:func:`lm_app.losses.projected_token_losses`, fused with its loss, in the
same order; the LSTM's input projections use this one.)
"""
import keras
from keras import ops


def project(x, kernel, bias, training=True):
    """``x @ kernel + bias`` for ``x`` of any rank; in training, the backward pass computes ``dx`` before ``dW``.

    Outside training (no gradient coming) or on another backend, the plain
    product, which exports and converts anywhere.
    """
    if not training or keras.backend.backend() != "tensorflow":
        return ops.matmul(x, kernel) + bias
    import tensorflow as tf

    kernel = tf.convert_to_tensor(kernel)
    bias = tf.convert_to_tensor(bias)
    flat = tf.reshape(x, [-1, tf.shape(x)[-1]])

    @tf.custom_gradient
    def affine(flat, kernel, bias):
        def grad(dy):
            dx = tf.matmul(dy, kernel, transpose_b=True)
            with tf.control_dependencies([dx]):
                d_kernel = tf.matmul(flat, dy, transpose_a=True)
            return dx, d_kernel, tf.reduce_sum(dy, 0)

        return tf.matmul(flat, kernel) + bias, grad

    y = affine(flat, kernel, bias)
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(kernel)[-1:]], 0))


@keras.saving.register_keras_serializable(package="lm_app")
class Logits(keras.layers.Layer):
    """A ``Dense(units)`` (same ``kernel``, ``bias``, initialisers) whose training pass uses :func:`project`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def affine(self):
        """``(kernel, bias)`` of ``logits = x kernel + bias``."""
        return self.kernel, self.bias

    def call(self, x, training=False):
        return project(x, *self.affine(), training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
