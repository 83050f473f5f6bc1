"""The normalisation rule: the notes' definition, and Python and TensorFlow agreeing on it."""
import collections

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_app import text
from tests.conftest import shared_file

TRICKY = [
    "Hello, World!",
    "It's a well-known fact -- isn't it?",
    "-leading hyphen, trailing- and - alone, --double",
    "Straße in İstanbul at 300 K (Kelvin sign)",
    "émigré naïve CAFÉ",
    "tabs\tjoin\vwords\x0cand\rcarriage",
    "emoji 😀 mid😀word",
    "   many    spaces   ",
    "no\u00a0break and\u2028line separator",
    "digits 123 vanish 4you",
    "''quoted'' 'single'",
    "\x00\x01control\x7f chars",
    "\ufeffbyte order mark",
    "",
    "-",
    "a-b-c d--e",
]


def tf_tokens(lines, mode="words"):
    return [[t.decode("utf-8") for t in row] for row in text.tf_tokenize(tf.constant(lines), mode).to_list()]


def test_rule_matches_the_notes():
    assert text.tokenize("Some of them\nLOOKS like, -it -- 'it'!") == ["some", "of", "them", "looks", "like", "'it'"]
    assert text.tokenize("well-known 3rd-rate") == ["well-known", "rd-rate"]
    assert " ".join(text.tokenize("A.B  c\n\nd")) == "ab c d"


def test_python_and_tensorflow_agree_on_tricky_text():
    assert tf_tokens(TRICKY) == [text.tokenize(line) for line in TRICKY]


def test_invalid_utf8_is_replaced_then_deleted_in_both():
    raw = b"caf\xe9 ok\xff done"
    assert tf_tokens([raw]) == [text.tokenize(raw.decode("utf-8", errors="replace"))] == [["caf", "ok", "done"]]


def test_pretokenized_keeps_tokens_and_ends_lines_with_eos():
    lines = ["a  b\t<unk>  c ", "", "N.Y. x\u00a0y"]
    expected = [["a", "b", "<unk>", "c", "<eos>"], ["<eos>"], ["N.Y.", "x\u00a0y", "<eos>"]]
    assert [text.tokenize(line + "\n", "pretokenized") for line in lines] == expected
    assert tf_tokens(lines, "pretokenized") == expected
    assert text.tokenize("a b\nc", "pretokenized") == ["a", "b", "<eos>", "c", "<eos>"]


def test_a_newline_is_a_space_so_lines_can_be_tokenized_apart():
    body = "\n".join(TRICKY)
    assert text.tokenize(body) == [t for line in TRICKY for t in text.tokenize(line)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40),
                min_size=1, max_size=8))
def test_python_and_tensorflow_agree_on_any_unicode(lines):
    assert tf_tokens(lines) == [text.tokenize(line) for line in lines]
    assert all(text.tokenize(" ".join(text.tokenize(line))) == text.tokenize(line) for line in lines)


def test_rule_reproduces_the_shared_shakespeare_normalisation():
    """Our rule on the raw play gives the shared train.txt, token for token (<unk> aside)."""
    raw = shared_file("shakespeare", "input.txt").read_text(encoding="utf-8").splitlines()
    reference = shared_file("shakespeare", "train.txt").read_text(encoding="utf-8").splitlines()[:2000]
    ours = [tokens for tokens in map(text.tokenize, raw) if tokens][:2000]
    theirs = [line.split() for line in reference]
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert len(mine) == len(ref)
        assert all(r == "<unk>" or m == r for m, r in zip(mine, ref)), (mine, ref)
    sample = raw[:3000]
    assert tf_tokens(sample) == [text.tokenize(line) for line in sample]


def test_python_and_tensorflow_agree_on_every_code_point():
    """Exhaustive: each Unicode scalar value, alone and between letters (case mapping included)."""
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != 0x0A]
    lines = [f"x{chr(c)}Y {chr(c)}" for c in code_points]
    # Compared joined by spaces (tokens hold no space and are never empty, so the join says the
    # same): a million lines as Python lists of tokens cost more than the tokenizing.
    got = tf.strings.reduce_join(text.tf_tokenize(tf.constant(lines)), axis=1, separator=" ").numpy().tolist()
    want = [" ".join(text.tokenize(line)).encode("utf-8") for line in lines]
    wrong = [(line, g, w) for line, g, w in zip(lines, got, want) if g != w]
    assert not wrong, wrong[:5]


def decoded(counts):
    return {k.decode("utf-8", "surrogatepass"): n for k, n in counts.items()}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.sampled_from(list("ab -'\n\t\r\v\f\x1c\x85\u2028İK")),
                                  st.characters()), max_size=80),
       st.sampled_from(text.MODES))
def test_fast_counting_equals_counting_the_tokens(body, mode):
    assert decoded(text.count_tokens(body, mode)) == collections.Counter(text.tokenize(body, mode))


@pytest.mark.parametrize("mode", text.MODES)
def test_fast_counting_on_tricky_lines(mode):
    body = "\n".join(TRICKY) + "\n<eos> <unk>\n\n"
    assert decoded(text.count_tokens(body, mode)) == collections.Counter(text.tokenize(body, mode))
