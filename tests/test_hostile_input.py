"""Hostile but valid JSON from the API never crashes the extractor: it is landed, exactly, with a fingerprint.

Each case is one record among normal ones, served compact (the page is spliced into the landing line as served)
and spread over lines (the page is re-serialised): the landing line must be valid JSON holding the record's
values exactly, its fingerprint must be computed (the same for both forms), and an id outside the 64-bit range
must not be listed as a parent. Checked independently of the extractor's own reader with the stdlib, numbers
read as text, under a raised recursion limit.
"""

from __future__ import annotations

import gzip
import json
import threading
from decimal import Decimal

import pytest

from multiverse_etl import jsonsafe
from multiverse_etl.extract.http.auth import Auth
from multiverse_etl.extract.http.bodies import error_detail, parse_page
from multiverse_etl.extract.lines import page_line
from multiverse_etl.extract.paginate import Page
from multiverse_etl.extract.parents import ParentSet, parent_id
from multiverse_etl.extract.resume import _read_part
from multiverse_etl.landing import LandingDigest, record_fingerprint
from support.recursion import recursion_limit

RUN_ID = "20261127T033400Z-1a2b3c"
PAGINATION = '{"next_token":null,"previous_token":null,"page_size":20}'
NORMAL = '{"id":1,"name":"Ann","programme_id":3,"modified_date":"2024-03-05T10:21:33"}'

DEEP = "[" * 1100 + '"bottom"' + "]" * 1100
VERY_DEEP = '{"a":' * 100_000 + "1" + "}" * 100_000
HOSTILE = {
    "id 2**64": '{"id":18446744073709551616,"name":"Bo"}',
    "id of 23 digits": '{"id":12345678901234567890123,"name":"Bo"}',
    "id in [2**63, 2**64)": '{"id":9223372036854775808,"name":"Bo"}',
    "id below -2**63": '{"id":-9223372036854775809,"name":"Bo"}',
    "id of 30 digits as a string": '{"id":"123456789012345678901234567890","name":"Bo"}',
    "number of 1,500 digits": '{"id":2,"programme_id":1' + "7" * 1499 + "}",
    "number of 5,000 digits": '{"id":2,"programme_id":-9' + "1" * 4999 + "}",
    "number beyond the double range": '{"id":2,"duration":1e400,"ratio":-2.5E+999}',
    "nesting of 1,100 levels": '{"id":2,"name":' + DEEP + "}",
    "nesting of 100,000 levels": '{"id":2,"name":' + VERY_DEEP + "}",
    "string of 1 MB": '{"id":2,"name":"' + "x" * 1_000_000 + '"}',
    "lone surrogates": '{"id":2,"name":"a\\ud800b","\\udfffkey":"\\udc00"}',
}


def in_big_stack(function):
    """function() in a thread with a 512 MiB stack under a raised recursion limit: the stdlib recurses (tests only)."""
    result: list = []

    def call():
        with recursion_limit(250_000):
            result.append(function())

    old = threading.stack_size(512 * 1024 * 1024)
    try:
        thread = threading.Thread(target=call)
        thread.start()
    finally:
        threading.stack_size(old)
    thread.join()
    assert result, "the stdlib could not read it"
    return result[0]


def read(text: str | bytes):
    """The stdlib's reading, integers as text and decimals exact (no precision or size limit); inside in_big_stack."""
    return json.loads(text, parse_int=str, parse_float=Decimal)


def same_json(a: str | bytes, b: str | bytes, key: str | None = None) -> bool:
    """Do both texts hold the same values (numbers compared as text), independently of the extractor's reader?"""
    return in_big_stack(lambda: (read(a)[key] if key else read(a)) == (read(b)[key] if key else read(b)))


def body_of(record: str, spread: bool) -> bytes:
    if spread:  # a pretty-printing API: the page cannot be spliced as served
        return (
            '{\n  "data": [\n    ' + NORMAL + ",\n    " + record + '\n  ],\n  "pagination": ' + PAGINATION + "\n}\n"
        ).encode()
    return ('{"data":[' + NORMAL + "," + record + '],"pagination":' + PAGINATION + "}").encode()


def land(body: bytes, parent=None) -> bytes:
    doc = parse_page(body)
    assert doc is not None, "the page was taken for unreadable"
    page = Page("apprenticeships", "/apprenticeships", {"page_size": 20}, 0, body, doc, "2026-11-27T03:34:00.000000Z")
    return page_line(page, RUN_ID, parent)


@pytest.mark.parametrize("spread", [False, True], ids=["compact", "spread"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_record_is_landed_exactly_with_its_fingerprint(case, spread):
    record = HOSTILE[case]
    body = body_of(record, spread)
    line = land(body)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert same_json(line, body, "data")  # valid JSON holding every value as served (numbers compared as text)
    if not spread:
        assert record.encode() in line  # spliced: the record's very text
    fingerprints = in_big_stack(lambda: read(line)["fingerprints"])
    assert len(fingerprints) == 2 and all(-(2**63) <= int(f) < 2**63 for f in fingerprints)
    assert int(fingerprints[0]) == record_fingerprint(json.loads(NORMAL))
    # The fingerprint is the record's, not its layout's: the other form of the page gives the same one.
    other = land(body_of(record, not spread))
    assert in_big_stack(lambda: read(other)["fingerprints"]) == fingerprints
    digest = LandingDigest()
    assert digest.add_line(line) and digest.count == 2


def test_the_fingerprint_keeps_every_digit_of_a_huge_id():
    """orjson reads both ids as the float 1.8446744073709552e19: the fingerprints must still differ."""
    a, b = (parse_page(body_of(f'{{"id":{2**64 + d},"name":"Bo"}}', False)) for d in (0, 1))
    assert a["data"][1]["id"] == 2**64 and b["data"][1]["id"] == 2**64 + 1
    assert record_fingerprint(a["data"][1]) != record_fingerprint(b["data"][1])


@pytest.mark.parametrize("case", [c for c in HOSTILE if c.startswith("id")])
def test_an_id_outside_the_64_bit_range_is_not_a_parent(case):
    doc = parse_page(body_of(HOSTILE[case], False))
    assert parent_id(doc["data"][0]) == 1
    assert parent_id(doc["data"][1]) is None


def test_ids_at_the_edges_of_the_64_bit_range_are_parents():
    for value in (0, 2**63 - 1, -(2**63), "9223372036854775807", " 42 "):
        assert parent_id({"id": value}) == int(value)
    for value in (2**63, -(2**63) - 1, "9223372036854775808", "1" * 5000, 1.0, True, jsonsafe.RawJson("1" * 5000)):
        assert parent_id({"id": value}) is None


def test_a_resume_reads_back_a_part_holding_hostile_pages():
    lines = [
        land(body_of(HOSTILE[case], spread), parent={"apprenticeship_id": 7})
        for case in HOSTILE
        if "100,000" not in case
        for spread in (False, True)
    ]
    done = ParentSet()
    assert _read_part(gzip.compress(b"".join(lines)), done) == (len(lines), 2 * len(lines))  # pages, records
    assert 7 in done


def test_an_error_body_nested_deeply_is_described_not_crashed_on():
    detail = error_detail(('{"detail":' + DEEP + "}").encode(), ("secret",))
    assert detail.startswith("[[[[") and len(detail) <= 200
    assert error_detail(b'{"detail":"bad secret"}', ("secret",)) == "bad ***"


def test_jsonsafe_reads_and_writes_back_exactly():
    for text in [NORMAL, DEEP, *HOSTILE.values(), '[1.5,-0.25,1e-7,"\\u00e9\\n",true,false,null,{},[]]']:
        value = jsonsafe.loads(text.encode())
        written = jsonsafe.dumps(value)
        assert written.isascii() and same_json(written, text)
    # Ordinary values: the bytes the stdlib writes (so fingerprints of ordinary records never change).
    ordinary = {"b": [1, 2.5, "é\ud800", None, True], "a": {"z": -(2**70)}, "c": ""}
    for sort_keys in (False, True):
        assert (
            jsonsafe.dumps(ordinary, sort_keys=sort_keys)
            == json.dumps(ordinary, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=True).encode()
        )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1,]",
        "[1 2]",
        '{"a" 1}',
        '{"a":1,}',
        "[01]",
        "[1]x",
        '"\x01"',
        "[" * 600,
        "[" * 600 + "1,]" + "]" * 599,
        "nul",
        '{"a":tru}',
        "-",
        "1.",
        '"\\ud8"',
    ],
)
def test_jsonsafe_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        jsonsafe.loads(text.encode())
    assert parse_page(text.encode()) is None


def test_a_login_answer_holding_hostile_json_still_gives_its_token():
    auth = Auth("http://127.0.0.1:1", None)
    auth.accept(b'{"access_token":"tok-1","token_type":"bearer","expires":1e400,"nest":' + DEEP.encode() + b"}")
    assert auth.headers == {"Authorization": "Bearer tok-1"}
