"""Dialogue corpora become examples whose contexts stay inside their dialogue."""
import numpy as np

from lm_app.dialogue.data import Examples, end_of_turn, read_dialogues, split_dialogues
from tests.test_dialogue.common import vocabulary, write_dialogues


def unique_dialogues(n, turns):
    """Dialogue ``d`` speaks only words ``dDtT...``: any word tells which dialogue it came from."""
    return [[f"d{chr(97 + d)}t{chr(97 + t)} word{chr(97 + d)}{chr(97 + t)}" for t in range(turns + d % 3)]
            for d in range(n)]


def test_a_context_never_holds_a_turn_of_another_dialogue(tmp_path):
    path = write_dialogues(tmp_path / "c.txt", unique_dialogues(8, 3))
    vocab = vocabulary(path)
    dialogues = read_dialogues([str(path)], vocab)
    assert [len(d) for d in dialogues] == [3 + d % 3 for d in range(8)]
    eot = end_of_turn(len(vocab))
    examples = Examples(dialogues, 2, 5, eot)
    assert len(examples) == sum(1 + d % 3 for d in range(8))  # every turn after the first two
    owner = {i: tok[1] for tok, i in vocab.index.items() if tok.startswith("d")}
    for x, y in examples.batches(3):
        ids = np.concatenate([np.asarray(x).reshape(len(y), -1), np.asarray(y)], axis=1)
        for row in ids:
            dialogues_seen = {owner[i] for i in row if i in owner}
            assert len(dialogues_seen) == 1, row
            assert (row == eot).sum() == 3  # two context turns and the response, each ended by </s>


def test_turns_are_cut_padded_and_blank_lines_alone_end_dialogues(tmp_path):
    path = write_dialogues(tmp_path / "c.txt", [["a b c d e f", "!!!", "b"], ["c", "d", "a b"]])
    vocab = vocabulary(path)
    dialogues = read_dialogues([str(path)], vocab)
    assert [len(d) for d in dialogues] == [3, 3]  # "!!!" keeps no word but is a turn
    assert dialogues[0][1] == []
    examples = Examples(dialogues, 2, 3, 99)
    x, y = next(iter(examples.batches(8)))
    assert x.shape == (2, 2, 4) and y.shape == (2, 4)
    np.testing.assert_array_equal(x[0, 0], vocab.ids("a b c".split()) + [99])
    np.testing.assert_array_equal(x[0, 1], [99, 0, 0, 0])
    np.testing.assert_array_equal(y[1], vocab.ids(["a", "b"]) + [99, 0])


def test_whole_dialogues_go_to_each_part():
    dialogues = [[[d]] for d in range(20)]
    parts = {part: split_dialogues(dialogues, part, 0.1, 0.1) for part in ("train", "valid", "test")}
    assert [len(p) for p in parts.values()] == [16, 2, 2]
    assert sorted(d[0][0] for p in parts.values() for d in p) == list(range(20))
