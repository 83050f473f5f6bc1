"""Request parsing (lm_app/serve/requests.py), in-process: the rules the server applies before the model.

The same rules over real HTTP are test_app.py's.
"""
import base64

import pytest

from lm_app.serve.requests import RequestError, parse_body, parse_request

# Bodies TF Serving refuses with a 400; test_app.py sends them over HTTP too.
BAD_REQUESTS = [
    b'{"instances": ["the cat"',  # malformed JSON
    b"",
    b'["the cat"]',  # not an object
    b'{"text": ["the cat"]}',  # neither instances nor inputs
    b'{"instances": []}',
    b'{"inputs": []}',
    b'{"instances": [3]}',  # not a string
    b'{"instances": [null]}',
    b'{"instances": [["the", "cat"]]}',  # wrong shape: the input is [-1] strings
    b'{"inputs": "the cat"}',  # a scalar for a [-1] input
    b'{"inputs": [["the cat"]]}',
    b'{"instances": [{"txt": "the cat"}]}',  # unknown input name
    b'{"inputs": {"text": ["a"], "extra": ["b"]}}',
    b'{"instances": ["a"], "inputs": ["a"]}',
    b'{"instances": [{"b64": "not base64!"}]}',
    b'{"instances": ["a"], "signature_name": "classify"}',
]


@pytest.mark.parametrize("body", BAD_REQUESTS)
def test_bad_requests_are_a_request_error_400(body):
    with pytest.raises(RequestError) as caught:
        parse_request(parse_body(body))
    assert caught.value.status == 400 and str(caught.value)


def test_rows_columns_and_base64_give_the_same_texts():
    texts = ["the cat", "on the mat"]
    b64 = [{"b64": base64.b64encode(t.encode()).decode()} for t in texts]
    for payload, columnar in [({"instances": texts}, False), ({"instances": [{"text": t} for t in texts]}, False),
                              ({"instances": b64}, False), ({"inputs": texts}, True),
                              ({"inputs": {"text": texts}}, True), ({"inputs": b64}, True),
                              ({"signature_name": "serving_default", "instances": texts}, False)]:
        assert parse_request(payload) == ([t.encode() for t in texts], columnar), payload


def refusal(call, *args):
    with pytest.raises(RequestError) as caught:
        call(*args)
    return caught.value.status, str(caught.value)


def test_more_instances_than_the_limit_are_refused():
    texts, _ = parse_request({"instances": ["the cat"] * 256})
    assert len(texts) == 256
    for payload in ({"instances": ["the cat"] * 257}, {"inputs": {"text": ["the cat"] * 257}}):
        status, message = refusal(parse_request, payload)
        assert status == 400 and "257" in message and "--max-instances" in message
    assert refusal(parse_request, {"instances": ["a", "b", "c"]}, 2)[0] == 400


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"instances": [' * 50_000, b"1" * 5000,
                                  b'{"instances": [' + b"9" * 10_000 + b"]}", b"\xff\xfe", b"{]"])
def test_hostile_json_is_a_400(body):
    status, message = refusal(parse_body, body)
    assert status == 400 and message.startswith("JSON Parse error")


def test_text_without_words_is_refused():
    for text in ("日本語", "", " 42 !", "--"):
        status, message = refusal(parse_request, {"instances": ["the cat", text]})
        assert status == 400 and message == "instances[1]: no words are left after normalisation"
    assert parse_request({"instances": ["日本語"]}, 256, "pretokenized")[0] == ["日本語".encode()]
    assert refusal(parse_request, {"instances": [" \n "]}, 256, "pretokenized")[0] == 400
