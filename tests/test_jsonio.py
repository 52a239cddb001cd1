"""Reading and writing documents through orjson: the stdlib's values, key order, no NaN written."""

from __future__ import annotations

import json
import math

import pytest

from bench.synth_coco import synthetic_document
from lrp import jsonio
from lrp.document import dumps, parse_json
from lrp.outputs import write_document
from lrp.errors import LrpError


def stdlib_dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def doc():
    d = synthetic_document(30, seed=2, masks=True)
    d["info"]["description"] = "päivä 日本 \u2028 \"quoted\" \\ slash"
    d["images"][0]["file_name"] = "ünïcode/ä b.png"
    return d


def test_written_text_parses_to_the_stdlib_value_in_the_same_key_order(doc):
    ours = dumps(doc)
    assert json.loads(ours) == json.loads(stdlib_dumps(doc))
    # Same keys in the same order at every level: re-serialising the parse gives the stdlib text.
    assert stdlib_dumps(json.loads(ours)) == stdlib_dumps(doc)
    assert "\n" not in ours and ours.startswith('{"info":')


def test_read_value_is_the_stdlib_value(doc):
    text = stdlib_dumps(doc)
    for data in (text, text.encode("utf-8")):
        assert parse_json(data, "doc.json") == json.loads(text)


def test_reading_keeps_the_stdlib_meaning_where_orjson_differs():
    big = 123456789012345678901234567890
    assert parse_json(f'{{"id": {big}}}', "x")["id"] == big  # orjson would give a float
    with pytest.raises(LrpError, match=r"^x: key 'a': NaN is not a JSON number"):  # refused on reading
        parse_json('{"a": NaN}', "x")
    assert parse_json('{"a": 1, "a": 2}', "x") == {"a": 2}
    with pytest.raises(LrpError, match=r"^x: not valid JSON: Expecting ',' delimiter at line 1 column 11$"):
        parse_json('{"a": [1,2}', "x")
    with pytest.raises(LrpError, match="not UTF-8"):
        parse_json(b'{"a": "\xff"}', "x")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_with_their_path(doc, bad, tmp_path):
    d = json.loads(stdlib_dumps(doc))
    d["lrp"]["poses"][3]["keypoints"][5] = bad
    with pytest.raises(LrpError, match=r"at lrp\.poses\[3\]\.keypoints\[5\]: JSON has no NaN"):
        dumps(d)
    out = tmp_path / "out.json"
    with pytest.raises(LrpError):
        write_document(d, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    d["lrp"]["poses"][3]["keypoints"][5] = 1.0
    d["lrp"]["poses"][3]["score"] = bad
    with pytest.raises(LrpError, match=r"at lrp\.poses\[3\]\.score:"):
        dumps(d)
    with pytest.raises(LrpError, match="at the top level"):
        dumps(bad)


def test_values_orjson_cannot_write_go_through_the_stdlib():
    import numpy as np

    value = {"a": 10**30, 1: [np.float64(0.5), True, None], "s": "x"}
    assert dumps(value) == stdlib_dumps(value)
    with pytest.raises(LrpError, match=r"at b\[0\]"):
        dumps({"b": [np.float64("nan")]})


def test_huge_finite_numbers_are_checked_item_by_item():
    value = [1e308, 1e308, [1e308]]
    assert jsonio.dumps(value) and json.loads(jsonio.dumps(value)) == value  # the sum overflows, the items do not


def test_long_integers_are_found_but_long_fractions_are_not():
    assert jsonio._has_long_integer(b'{"id": 1234567890123456789}')
    assert jsonio._has_long_integer(b'[-12345678901234567890123]')
    assert not jsonio._has_long_integer(b'[0.00012345678901234567, 1.2345678901234567e-05]')
    assert not jsonio._has_long_integer(b'[12345678901234567890.5, 12345678901234567890e3, 123456789012345678]')
    text = '[0.00012345678901234567, 12345678901234567890123]'
    assert parse_json(text, "x") == json.loads(text) and isinstance(parse_json(text, "x")[1], int)
