"""``generate`` (lm_app/generate.py): decoding options that must agree, reproducible sampling, long prompts."""
import json

import pytest

from lm_app.generate import Generator
from lm_app.predict import SHOWN_CHARS
from tests.conftest import assert_usage_error, run_cli, run_cli_in_process
from tests.test_predict import LONG

pytestmark = pytest.mark.slow


def test_seq2seq_generates_past_its_target_length(seq2seq_model):
    _, model_dir = seq2seq_model
    out = Generator(model_dir).generate("the cat sat on the", 7, greedy=True)
    assert out["continuation"] == "mat and the dog ran to the"


@pytest.mark.parametrize("which", ["attention", "seq2seq"])
def test_decoding_options_agree_where_they_must(attention_model, seq2seq_model, which):
    model_dir = {"attention": attention_model, "seq2seq": seq2seq_model}[which][1]
    gen = Generator(model_dir)
    prompt = "while the bird"
    greedy = gen.generate(prompt, 6, greedy=True)
    assert gen.generate(prompt, 6, temperature=0.0)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, top_k=1, seed=5)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, beam=1)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, beam=3)["log_prob"] >= greedy["log_prob"] - 1e-4
    hot = dict(temperature=3.0, seed=11)
    assert gen.generate(prompt, 6, **hot) == gen.generate(prompt, 6, **hot)


def test_generate_from_the_command_line_is_reproducible(attention_model):
    _, model_dir = attention_model
    args = ("generate", "--model-dir", model_dir, "--words", 8, "--temperature", 2.0, "--seed", 3,
            "--json", "the cat")
    # One run as a process, one in this one: the seed alone decides, whatever the process.
    first, second = run_cli(*args), run_cli_in_process(*args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert len(json.loads(first.stdout)["words"]) == 8
    assert_usage_error(run_cli_in_process("generate", "--model-dir", model_dir, "--top-p", 1.5, "the"), "--top-p")
    assert_usage_error(run_cli_in_process("generate", "--model-dir", model_dir, "  "), "empty")


def test_generate_echoes_the_end_of_a_long_text_only(window_rnn):
    proc = run_cli_in_process("generate", "--model-dir", window_rnn, "--words", 3, "--greedy", "-",
                              stdin=LONG.encode("utf-8"))
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("... ") and "the cat sat on the " in line, line[:300]
    assert len(line) < SHOWN_CHARS + 100
