"""policies.codec decodes as the standard library does (values and errors), only faster."""

from __future__ import annotations

import json
import math

import pytest

from policies import codec


def _reject(name: str) -> None:
    raise ValueError(name)


def standard(body: bytes):
    return json.loads(body.decode("utf-8"), parse_constant=_reject)


BODIES = [
    b'{"a": 1, "b": [1.5, -0.0, 5e-324, 1e-05, 1e308], "c": "\\u00e9\\ud83d\\ude00"}',
    b'{"a": 1, "a": 2}',
    b"[18446744073709551615, 9223372036854775807, -9223372036854775808]",
    b"[-9223372036854775809, -9999999999999999999, 18446744073709551616]",
    b"[" + b"1" * 30 + b", -" + b"9" * 25 + b"]",
    b'{"id": "' + b"7" * 40 + b'"}',
    b'  {"x": true, "y": null, "z": false}  ',
    b'"\\ud800"',
]


@pytest.mark.parametrize("body", BODIES)
def test_values_equal_the_standard_librarys(body: bytes) -> None:
    ours, theirs = codec.loads(body), standard(body)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # ints stay ints, exactly


@pytest.mark.parametrize(
    "body",
    [b'{"a": NaN}', b"[Infinity]", b"[-Infinity]", b"\xef\xbb\xbf{}", b"\xff", b"{", b"", b"[1,]"],
)
def test_bad_bodies_fail_as_with_the_standard_library(body: bytes) -> None:
    with pytest.raises(ValueError) as theirs:
        standard(body)
    with pytest.raises(ValueError) as ours:
        codec.loads(body)
    assert type(ours.value) is type(theirs.value)


def test_numbers_beyond_a_double_decode_as_the_standard_library_does() -> None:
    assert codec.loads(b"[1e400]") == [math.inf]


def test_dumps_is_compact_utf8_and_round_trips() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é", "big": 10**30}
    text = codec.dumps_text(value, sort_keys=True)
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert codec.loads(text) == value
