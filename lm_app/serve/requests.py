"""TensorFlow Serving's REST request bodies and URLs, parsed into texts or refused with TF Serving's errors.

Pure Python (no TensorFlow, no aiohttp), so each rule is unit-tested directly.
"""
import base64
import binascii
import json
import re

from ..text import has_words
from .limits import DEFAULT_MAX_INSTANCES

SIGNATURE = "serving_default"
INPUT = "text"
TURNS = "turns"  # a dialogue model's input: each instance is a list of turns

# /v1/models/<name>[/versions/<n>][:<verb> | /metadata], as TensorFlow Serving parses it.
ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?:(?P<verb>:[A-Za-z]+)|(?P<metadata>/metadata))?$")


class RequestError(Exception):
    """A request TF Serving would refuse: the HTTP status and its ``{"error": ...}`` text."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status



def _text(value, where):
    """One instance as bytes: a string, or TF Serving's ``{"b64": ...}`` for binary data."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}: 'b64' is not valid base64") from None
    if isinstance(value, list):
        raise RequestError(f"{where}: expected one string per instance (input '{INPUT}' has "
                           f"shape [-1]), got a list")
    raise RequestError(f"{where}: expected a string, got {type(value).__name__}")


def _turns(value, where):
    """One dialogue instance: a non-empty list of turns, each as :func:`_text` takes it."""
    if not isinstance(value, list) or not value:
        raise RequestError(f"{where}: expected a non-empty list of turns (strings), got "
                           f"{type(value).__name__ if not isinstance(value, list) else 'an empty list'}")
    turns = []
    for i, turn in enumerate(value):
        if isinstance(turn, list):
            raise RequestError(f"{where}[{i}]: expected a string, got a list")
        turns.append(_text(turn, f"{where}[{i}]"))
    return turns


def parse_body(body):
    """The JSON of a request body; anything that is not JSON (or is too deep to parse) is a 400."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise RequestError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError:
        raise RequestError("JSON Parse error: the body is not UTF-8") from None
    except RecursionError:
        raise RequestError("JSON Parse error: the body is nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts
        raise RequestError("JSON Parse error: a number has too many digits") from None


def parse_request(payload, max_instances=DEFAULT_MAX_INSTANCES, mode="words", input_name=INPUT):
    """The texts of a predict request and whether it is columnar (``inputs``) or row (``instances``).

    Every text must keep a word after the model's normalisation (``mode``), the
    rule ``predict`` applies too: without one the model would answer from an
    empty context.  A dialogue model's input is ``turns``: each instance is a
    list of turns, of which one at least must keep a word.
    """
    if not isinstance(payload, dict):
        raise RequestError("JSON Value: the request body is not an object")
    signature = payload.get("signature_name", SIGNATURE) or SIGNATURE
    if signature != SIGNATURE:
        raise RequestError(f'Serving signature name: "{signature}" not found in signature def')
    if "instances" in payload and "inputs" in payload:
        raise RequestError("Not allowed to mix 'instances' and 'inputs' in one request")
    if "instances" in payload:
        key, items = "instances", payload["instances"]
        if not isinstance(items, list):
            raise RequestError("'instances' must be a list")
    elif "inputs" in payload:
        key, items = "inputs", payload["inputs"]
        if isinstance(items, dict) and "b64" not in items:
            if set(items) != {input_name}:
                raise RequestError(f"'inputs': expected the one input '{input_name}', got "
                                   f"{sorted(items) or 'none'}")
            items = items[input_name]
        if not isinstance(items, list):
            raise RequestError(f"'inputs': input '{input_name}' takes a list")
    else:
        raise RequestError("Missing 'inputs' or 'instances' key")
    if not items:
        raise RequestError(f"'{key}' is empty")
    if len(items) > max_instances:
        raise RequestError(f"'{key}' holds {len(items)} texts, over the limit of {max_instances} "
                           "per request (--max-instances): send them in several requests")
    texts = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if key == "instances" and isinstance(item, dict) and "b64" not in item:
            if set(item) != {input_name}:
                raise RequestError(f"{where}: expected the one input '{input_name}', got {sorted(item) or 'none'}")
            item = item[input_name]
        texts.append(_turns(item, where) if input_name == TURNS else _text(item, where))
        pieces = texts[-1] if input_name == TURNS else [texts[-1]]
        if not any(has_words(piece.decode("utf-8", errors="replace"), mode) for piece in pieces):
            raise RequestError(f"{where}: no words are left after normalisation")
    return texts, key == "inputs"

