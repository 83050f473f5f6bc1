"""vectors.txt in the word2vec text format, read back by us and by gensim; the projector's files."""
import json

import numpy as np
import pytest

from lm_app.errors import UsageError
from lm_app.word2vec.vectors import (EXACT, WORDS_RULE, normalise_query, query_rule, read_header,
                                     read_vectors, write_vectors)
from tests.test_embeddings.conftest import DIM, planted_vectors


def awkward_vectors():
    """Floats whose shortest printing is long, tiny, huge or negative: all must come back bit for bit."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(0, 1, (6, 7)).astype(np.float32)
    vectors[0] = [1 / 3, -2 / 3, 1e-30, -3.4e38, 1.17549435e-38, 1e-45, 0.1]
    # a --pretokenized vocabulary splits on ASCII whitespace only: a word may hold a no-break space
    return ["the", "don't", "well-known", "a", "é", "no\u00a0break"], vectors


def test_vectors_round_trip_exactly_through_our_reader(tmp_path):
    words, vectors = awkward_vectors()
    write_vectors(tmp_path / "v.txt", words, vectors)
    got_words, got = read_vectors(tmp_path / "v.txt")
    assert got_words == words and got.dtype == np.float32
    np.testing.assert_array_equal(got, vectors)
    assert read_header(tmp_path / "v.txt") == (6, 7)


def test_gensim_reads_the_vectors_file_unchanged(w2v_folder, tmp_path):
    """#15: gensim, a real client, loads vectors.txt as it is and gets the same matrix and words."""
    from gensim.models import KeyedVectors

    words, vectors = planted_vectors()
    loaded = KeyedVectors.load_word2vec_format(str(w2v_folder / "vectors.txt"), binary=False)
    assert loaded.index_to_key == words
    np.testing.assert_array_equal(loaded.vectors, vectors)
    awkward, exact = awkward_vectors()
    write_vectors(tmp_path / "v.txt", awkward, exact)
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"))
    assert loaded.index_to_key == awkward
    np.testing.assert_array_equal(loaded.vectors, exact)


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("three 2\na 1 2\n", "first line should be 'count dimension'"),
    ("2 0\n", "first line should be 'count dimension'"),
    ("2 2\na 1 2\nb 1\n", "line 3: expected a word and 2 numbers, got 2 fields"),
    ("2 2\na 1 2\na 3 4\n", "line 3: the word 'a' appears twice"),
    ("3 2\na 1 2\nb 3 4\n", "has 2 vectors, but its header says 3"),
    ("1 2\na 1 x\n", "not a number"),
])
def test_a_malformed_vectors_file_is_one_clear_line(tmp_path, text, fragment):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=fragment) as e:
        read_vectors(path)
    assert "\n" not in str(e.value)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(UsageError, match="no word vectors file"):
        read_vectors(tmp_path / "none.txt")
    with pytest.raises(UsageError, match="is a folder"):
        read_header(tmp_path)


def test_tensorboards_projector_shows_the_vectors_and_their_words(w2v_folder):
    """#15: TensorBoard's own projector plugin, given the folder as --logdir, serves the vectors and words."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    apps = ProjectorPlugin(base_plugin.TBContext(logdir=str(w2v_folder), data_provider=None)).get_plugin_apps()

    def get(route, query=""):
        response = Client(apps[route]).get(route + query)
        assert response.status_code == 200, response.data
        return response.data

    words, vectors = planted_vectors()
    assert json.loads(get("/runs")) == ["."]
    [embedding] = json.loads(get("/info", "?run=."))["embeddings"]
    assert embedding["tensorShape"] == list(vectors.shape)
    tensor = np.frombuffer(get("/tensor", f"?run=.&name={embedding['tensorName']}"), dtype=np.float32)
    np.testing.assert_array_equal(tensor.reshape(vectors.shape), vectors)
    # one column: no header line, one word per row
    assert get("/metadata", f"?run=.&name={embedding['tensorName']}").decode().splitlines() == words


def test_query_words_are_normalised_as_the_vocabulary_was(w2v_folder):
    assert json.loads((w2v_folder / "word2vec.json").read_text())["query_rule"] == WORDS_RULE
    assert json.loads((w2v_folder / "word2vec.json").read_text())["dim"] == DIM
    assert normalise_query("King's!", WORDS_RULE) == "king's"
    assert normalise_query("two words", WORDS_RULE) == "two words"  # never a vocabulary word
    assert query_rule(["the", "The", "<eos>"]) == EXACT  # a --pretokenized vocabulary keeps case
    assert normalise_query("The", EXACT) == "The"
