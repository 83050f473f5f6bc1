"""build-dict's native counter (lm_app/native/count.py) gives exactly the Python rule's counts."""
import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_app import corpus, text
from lm_app.native.count import NativeCounter
from tests.test_text import TRICKY


@pytest.fixture(scope="module")
def counter_class():
    if NativeCounter.open() is None:
        pytest.skip("no C++ compiler: build-dict counts in Python")
    return NativeCounter


def native_counts(blocks, mode):
    with NativeCounter.open() as counter:
        for block in blocks:
            counter.add(block, mode)
        return collections.Counter({k.decode("utf-8", "surrogatepass"): n for k, n in counter.counts().items()})


def words(blocks, mode):
    """The rule's tokens, without pretokenized's <eos> (the caller counts those lines)."""
    return collections.Counter(t for b in blocks for t in text.tokenize(b, mode) if mode == "words" or t != text.EOS)


def test_every_code_point_alone_and_between_letters(counter_class):
    """Exhaustive, as the TensorFlow twin is tested: case mapping (the Kelvin sign is k) and deletion."""
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = ["\n".join(f"x{chr(c)}Y {chr(c)}" for c in code_points[i:i + 4096])
              for i in range(0, len(code_points), 4096)]
    assert native_counts(blocks, "words") == words(blocks, "words")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.one_of(st.sampled_from(list("aB -'\n\t\r\v\f\x1c\x85\u2028\u0130\u212a")),
                                           st.characters()), max_size=60), max_size=4),
       st.sampled_from(text.MODES))
def test_blocks_of_any_text(counter_class, blocks, mode):
    assert native_counts(blocks, mode) == words(blocks, mode)


@pytest.mark.parametrize("mode", text.MODES)
def test_build_dict_counts_the_same_with_and_without_it(counter_class, tmp_path, monkeypatch, mode):
    path = tmp_path / "a.txt"
    path.write_text("\n".join(TRICKY * 50) + "\nno newline at the end", encoding="utf-8")
    native = corpus.count_tokens([path], mode, workers=1)
    monkeypatch.setattr(corpus.NativeCounter, "open", classmethod(lambda cls: None))
    assert corpus.count_tokens([path], mode, workers=1) == native
