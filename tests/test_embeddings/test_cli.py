"""similar, analogy and evaluate-embeddings as a user runs them (the CLI's main, in this process)."""
import json

import pytest

from lm_app.word2vec import evaluate
from tests.conftest import assert_one_line_error, main_in_process, run_cli_in_process, shared_file


def test_similar_and_analogy_answer_from_the_saved_model(w2v_folder):
    """#15: the planted neighbours and king - man + woman = queen, as JSON and as text."""
    proc = run_cli_in_process("similar", "King", "girl", "--model-dir", w2v_folder, "--top-k", 3, "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert [r["word"] for r in results] == ["King", "girl"]
    assert all(len(r["similar"]) == 3 for r in results)
    # king shares two of its three features with man, queen and prince only
    assert {r["word"] for r in results[0]["similar"]} == {"man", "queen", "prince"}
    assert results[0]["similar"][0]["cosine"] >= results[0]["similar"][2]["cosine"]

    proc = run_cli_in_process("analogy", "man", "king", "woman", "--model-dir", w2v_folder)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "man : king = woman : queen" and len(lines) == 11
    assert lines[1].split()[0] == "queen" and float(lines[1].split()[1]) > 0.99


@pytest.mark.parametrize("argv, fragment", [
    (["similar", "king", "nosuchword"], "'nosuchword' is not in the vocabulary of"),
    (["analogy", "man", "king", "two words"], "'two words' is not in the vocabulary of"),
    (["similar", "king", "--top-k", "0"], "--top-k: must be a positive integer, got 0"),
])
def test_a_word_outside_the_vocabulary_is_named_before_tensorflow_loads(w2v_folder, argv, fragment, capsys):
    code, _, err = main_in_process(*argv, "--model-dir", w2v_folder, capsys=capsys)
    assert_one_line_error(code, err, argv[0], fragment)


@pytest.mark.parametrize("command", [["similar", "king"], ["analogy", "a", "b", "c"], ["evaluate-embeddings"]])
def test_a_folder_that_is_no_word2vec_model_is_one_line(tmp_path, command, capsys):
    code, _, err = main_in_process(*command, "--model-dir", tmp_path / "none", capsys=capsys)
    assert_one_line_error(code, err, command[0], "no word2vec model in")
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "saved_model.pb").write_bytes(b"")  # a language model's folder, say
    code, _, err = main_in_process(*command, "--model-dir", tmp_path / "lm", capsys=capsys)
    assert_one_line_error(code, err, command[0], "is not a word2vec model folder (no word2vec.json)")


def write_sets(folder):
    (folder / "pairs.tsv").write_text("king\tqueen\t9\nking\tapple\t1\nman\tboy\t6\nriver\tstone\t3\n")
    (folder / "questions.txt").write_text(": royal\nman king woman queen\nboy prince girl princess\n"
                                          "man king nosuchword queen\n")
    return folder / "pairs.tsv", folder / "questions.txt"


def test_evaluate_embeddings_reports_the_files_given(w2v_folder, tmp_path, capsys):
    pairs, questions = write_sets(tmp_path)
    code, out, err = main_in_process("evaluate-embeddings", "--model-dir", w2v_folder, "--pairs", pairs,
                                     "--analogies", questions, "--json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    [pair], [analogy] = report["pairs"], report["analogies"]
    assert (pair["used"], pair["pairs"], pair["coverage"]) == (4, 4, 1.0)
    assert (analogy["correct"], analogy["used"], analogy["questions"]) == (2, 2, 3)
    assert analogy["sections"]["royal"]["accuracy"] == analogy["accuracy"] == 1.0
    code, out, err = main_in_process("evaluate-embeddings", "--model-dir", w2v_folder, "--analogies", questions,
                                     capsys=capsys)
    assert code == 0 and out.splitlines() == [
        "questions.txt: accuracy 100.0% (2 of 2 questions right; 2 of 3 in the vocabulary, 66.7%)"]


def test_evaluate_embeddings_reads_the_standard_sets_by_default(w2v_folder, capsys):
    shared_file("word_eval", "questions-words.txt")
    code, out, err = main_in_process("evaluate-embeddings", "--model-dir", w2v_folder, capsys=capsys)
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == ["wordsim353.tsv", "simlex999.txt",
                                                                 "questions-words.txt"]


def test_without_the_standard_sets_it_says_to_give_files(w2v_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate, "EVAL_DIR", tmp_path / "absent")
    code, _, err = main_in_process("evaluate-embeddings", "--model-dir", w2v_folder, capsys=capsys)
    assert_one_line_error(code, err, "evaluate-embeddings", "give --pairs FILE")
    code, _, err = main_in_process("evaluate-embeddings", "--model-dir", w2v_folder, "--pairs",
                                   tmp_path / "nofile.tsv", capsys=capsys)
    assert_one_line_error(code, err, "evaluate-embeddings", "nofile.tsv")
