"""The dialogue models' pieces against NumPy, and decoding one word at a time against teacher forcing."""
import numpy as np
import pytest
import tensorflow as tf

from lm_app.dialogue.models import DialogueModel, gaussian_kl, reparameterise


def numpy_kl(mu_q, sigma_q, mu_p, sigma_p):
    """KL of diagonal Gaussians written from the densities: E_q[log q - log p], per dimension, summed."""
    log_q_minus_log_p = np.log(sigma_p) - np.log(sigma_q)
    expected_square = (sigma_q ** 2 + (mu_q - mu_p) ** 2) / sigma_p ** 2
    return np.sum(log_q_minus_log_p + 0.5 * expected_square - 0.5, axis=-1)


def test_the_kl_of_two_diagonal_gaussians_matches_numpy():
    rng = np.random.default_rng(0)
    mu_q, mu_p = rng.normal(size=(2, 4, 5))
    sigma_q, sigma_p = rng.uniform(0.2, 2.0, size=(2, 4, 5))
    got = gaussian_kl(*(tf.constant(a) for a in (mu_q, sigma_q, mu_p, sigma_p)))
    np.testing.assert_allclose(got, numpy_kl(mu_q, sigma_q, mu_p, sigma_p), rtol=1e-10)
    np.testing.assert_allclose(gaussian_kl(*(tf.constant(a) for a in (mu_p, sigma_p, mu_p, sigma_p))), 0, atol=1e-12)


def test_the_kl_by_monte_carlo():
    """The closed form is the mean of log q(z) - log p(z) over z ~ q."""
    rng = np.random.default_rng(1)
    mu_q, sigma_q = np.array([0.3, -1.0]), np.array([0.5, 1.2])
    mu_p, sigma_p = np.array([0.0, 0.5]), np.array([1.0, 0.8])
    z = mu_q + sigma_q * rng.normal(size=(200_000, 2))

    def log_density(z, mu, sigma):
        return np.sum(-0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=-1)

    estimate = np.mean(log_density(z, mu_q, sigma_q) - log_density(z, mu_p, sigma_p))
    assert float(gaussian_kl(mu_q, sigma_q, mu_p, sigma_p)) == pytest.approx(estimate, abs=0.02)


def test_the_reparameterised_sample_and_its_gradient_match_numpy():
    rng = np.random.default_rng(2)
    mu, sigma, eps = rng.normal(size=3), rng.uniform(0.1, 2, size=3), rng.normal(size=3)
    mu_t, sigma_t = tf.Variable(mu), tf.Variable(sigma)
    with tf.GradientTape() as tape:
        z = reparameterise(mu_t, sigma_t, tf.constant(eps))
        total = tf.reduce_sum(z)
    np.testing.assert_allclose(z, mu + sigma * eps)
    d_mu, d_sigma = tape.gradient(total, [mu_t, sigma_t])
    np.testing.assert_allclose(d_mu, np.ones(3))
    np.testing.assert_allclose(d_sigma, eps)  # the noise is fixed: the gradient flows through mu and sigma


def test_the_bag_of_words_loss_matches_numpy():
    """Zhao et al. 2017's loss: the sum over a response's real tokens of -log softmax(bag logits), <pad> left out."""
    tf.keras.utils.set_random_seed(6)
    model = DialogueModel(9, "vhred", "gru", embedding=4, hidden=6, bow_loss=1.0, seed=5).build_all()
    rng = np.random.default_rng(7)
    condition = rng.normal(size=(3, 12)).astype("float32")
    response = np.array([[3, 5, 5, 9, 0], [1, 2, 0, 0, 0], [4, 8, 7, 6, 9]], dtype="int32")  # 9: </s>
    logits = model.bag(tf.constant(condition)).numpy().astype("float64")
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    expected = [-sum(log_p[i, w] for w in row if w) for i, row in enumerate(response)]
    got = model.bag_of_words_loss(tf.constant(condition), tf.constant(response))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not hasattr(DialogueModel(9, "hred", bow_loss=1.0).build_all(), "bag")  # VHRED's only: HRED has no z


@pytest.mark.parametrize("arch,cell", [("hred", "gru"), ("vhred", "lstm"), ("seq2seq", "gru"), ("hred", "lstm")])
def test_decoding_step_by_step_gives_teacher_forcings_log_probabilities(arch, cell):
    tf.keras.utils.set_random_seed(4)
    model = DialogueModel(11, arch, cell, embedding=6, hidden=8, seed=5).build_all()
    rng = np.random.default_rng(3)
    context = tf.constant(rng.integers(1, 12, size=(3, 2, 5)) * (rng.random((3, 2, 5)) < 0.8), tf.int32)
    response = tf.constant(rng.integers(1, 12, size=(3, 6)), tf.int32)
    c = model.context(context)
    z = model.latent_sample(c)[0] if model.latent else None
    condition, states = model.start(c, z)
    forced = tf.nn.log_softmax(model.decode(model.decoder_inputs(response), condition, states))
    previous = tf.fill([3], model.eot)
    for t in range(response.shape[1]):
        logits, states = model.step(previous, condition, states)
        np.testing.assert_allclose(tf.nn.log_softmax(logits), forced[:, t], atol=1e-5)
        previous = response[:, t]


def test_the_flat_baseline_has_about_hreds_parameter_count(capsys):
    counts = {}
    for cell in ("gru", "lstm"):
        for arch in ("hred", "seq2seq"):
            model = DialogueModel(500, arch, cell, embedding=32, hidden=64).build_all()
            counts[arch, cell] = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print(f"{cell}: HRED {counts['hred', cell]:,} parameters, flat seq2seq {counts['seq2seq', cell]:,}")
        assert counts["seq2seq", cell] == pytest.approx(counts["hred", cell], rel=0.01)


def test_vhred_drops_decoder_input_words_in_training_only():
    model = DialogueModel(11, "vhred", "gru", embedding=4, hidden=4, word_drop=0.4, seed=1).build_all()
    response = tf.fill([200, 30], 5)
    trained = model.decoder_inputs(response, training=True).numpy()
    assert (trained[:, 0] == model.eot).all()  # the start symbol is never dropped
    assert np.mean(trained[:, 1:] == 1) == pytest.approx(0.4, abs=0.03)  # <unk> is id 1
    assert set(np.unique(trained[:, 1:])) == {1, 5}
    assert (model.decoder_inputs(response).numpy()[:, 1:] == 5).all()
    hred = DialogueModel(11, "hred", "gru", embedding=4, hidden=4, word_drop=0.4).build_all()
    assert (hred.decoder_inputs(response, training=True).numpy()[:, 1:] == 5).all()


def test_vhreds_posterior_reads_which_words_the_response_has_not_how_many():
    """Two responses of the same words at different lengths give the same posterior, so z cannot be a length code.

    Read by the utterance RNN (``posterior_reads="rnn"``), the response's length
    was the cheapest thing for z to carry, and the prior's draws of it fixed how
    long an answer ran, whatever the temperature.
    """
    context = tf.ones([3, 2, 5], tf.int32)
    response = tf.constant([[3, 4, 11, 0, 0, 0, 0], [3, 4, 3, 4, 11, 0, 0], [4, 3, 4, 3, 4, 3, 11]])  # 11 is </s>
    posteriors = {}
    for reads in ("rnn", "mean"):
        model = DialogueModel(11, "vhred", "gru", embedding=4, hidden=4, seed=1, posterior_reads=reads).build_all()
        inputs = tf.concat([model.context(context), model.read_response(response)], axis=-1)
        posteriors[reads] = np.concatenate([t.numpy() for t in model.gaussian(model.posterior, inputs)], axis=-1)
    assert np.allclose(posteriors["mean"][0], posteriors["mean"][1:], atol=1e-6)
    assert not np.allclose(posteriors["rnn"][0], posteriors["rnn"][1], atol=1e-6)
    assert not np.allclose(posteriors["rnn"][1], posteriors["rnn"][2], atol=1e-6)
    other = model.read_response(tf.constant([[5, 6, 11, 0, 0, 0, 0]]))  # the last model's: the mean
    assert not np.allclose(other, model.read_response(response[:1]))  # it does read the words


def test_the_kl_weight_rises_linearly_with_training_steps_and_evaluation_weighs_it_fully():
    model = DialogueModel(11, "vhred", "gru", embedding=4, hidden=4, kl_anneal_steps=4, seed=1).build_all()
    context, response = tf.ones([2, 2, 3], tf.int32), tf.constant([[3, 11, 0], [4, 4, 11]])
    weights = []
    for _ in range(6):
        weights.append(float(model.kl_weight()))
        _, _, kl = model.token_losses(context, response, training=True)
        assert kl.shape == (2,) and (kl.numpy() >= 0).all()
    assert weights == [0, 0.25, 0.5, 0.75, 1, 1]
    model.token_losses(context, response)
    assert float(model.kl_step) == 6  # evaluation does not advance the schedule


def test_the_free_nats_leave_a_small_kl_unpulled_in_training_only():
    """Below ``kl_free_nats`` the KL gives the prior no gradient in training; evaluation's bound counts it whole."""
    context, response = tf.ones([2, 2, 3], tf.int32), tf.constant([[3, 11, 0], [4, 4, 11]])
    norms = {}
    for free in (0.0, 1e6):
        model = DialogueModel(11, "vhred", "gru", embedding=4, hidden=4, kl_free_nats=free, seed=1).build_all()
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(model.token_losses(context, response, training=True)[0])
        norms[free] = sum(float(tf.norm(g)) for g in tape.gradient(total, model.prior.trainable_weights))
        draws = model.seed_generator.state.numpy()
        evaluated = model.token_losses(context, response)[0]
        model.kl_free_nats = 0.0
        model.seed_generator.state.assign(draws)  # the same z
        assert float(tf.reduce_sum(model.token_losses(context, response)[0])) == pytest.approx(
            float(tf.reduce_sum(evaluated)))  # evaluation ignores the free nats
    assert norms[0.0] > 0 and norms[1e6] == 0


def test_beam_search_with_an_end_keeps_finished_answers_and_stops():
    """Answers that chose the end (id 3) keep their totals, compete with longer ones, and stop the search."""
    from lm_app.decoding import beam_search

    table = {(): [0, 0.55, 0.45, 0], (2,): [0, 0, 0, 1.0], (1,): [0, 0.5, 0, 0.5], (1, 1): [0, 0, 0, 1.0]}
    calls = []

    def next_log_probs(sequences):
        calls.append(len(sequences))
        return np.log(np.maximum([table[tuple(seq)] for seq in sequences], 1e-300))

    results = beam_search(next_log_probs, [], 10, beam=2, end=3)
    assert [ids for ids, _ in results] == [[2, 3], [1, 1, 3]]
    np.testing.assert_allclose([total for _, total in results], np.log([0.45, 0.275]))
    assert calls == [1, 2, 1]  # finished answers are not extended, and all finished after three steps
