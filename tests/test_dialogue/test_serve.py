"""``serve`` on a dialogue model: ``{"instances": [{"turns": [...]}]}`` on TF Serving's REST API."""
import re

import pytest

from lm_app.serve.requests import RequestError, parse_request
from tests.test_dialogue.common import WORDS
from tests.test_serve.test_app import Server, running


def test_turns_instances_parse_in_rows_and_columns():
    rows, columnar = parse_request({"instances": [{"turns": ["a b", ""]}, ["c"]]}, input_name="turns")
    assert rows == [[b"a b", b""], [b"c"]] and not columnar
    columns, columnar = parse_request({"inputs": {"turns": [["a"], ["b", "c"]]}}, input_name="turns")
    assert columns == [[b"a"], [b"b", b"c"]] and columnar


@pytest.mark.parametrize("payload,fragment", [
    ({"instances": ["a b"]}, "expected a non-empty list of turns"),
    ({"instances": [{"turns": []}]}, "an empty list"),
    ({"instances": [["a", ["b"]]]}, "instances[0][1]: expected a string, got a list"),
    ({"instances": [{"turns": ["!!!", ""]}]}, "no words are left"),
    ({"instances": [{"text": "a"}]}, "expected the one input 'turns'"),
    ({"inputs": {"text": [["a"]]}}, "expected the one input 'turns'"),
])
def test_bad_turns_are_refused(payload, fragment):
    with pytest.raises(RequestError, match=re.escape(fragment)):
        parse_request(payload, input_name="turns")


def test_the_server_answers_contexts_of_any_number_of_turns(vhred):
    for server in running(Server(vhred)):  # killed after the body if it still runs
        check_answers(server)


def check_answers(server):
    status, body = server.predict({"instances": [{"turns": ["alpha bravo charlie", "bravo charlie delta"]},
                                                 ["golf hotel india"]]})
    assert status == 200, body
    assert [sorted(row) for row in body["predictions"]] == [["log_prob", "response"]] * 2
    assert all(set(row["response"].split()) <= set(WORDS) and row["log_prob"] < 0 for row in body["predictions"])
    status, body = server.predict({"inputs": {"turns": [["echo"], ["alpha", "bravo", "charlie"]]}})
    assert status == 200 and len(body["outputs"]["response"]) == 2, body
    status, body = server.predict({"instances": ["alpha bravo"]})
    assert status == 400 and "list of turns" in body["error"]
    code, _, _ = server.stop()
    assert code == 0
