"""Lambda event filtering (FilterCriteria): one test per operator, plus the payload parsing rules."""

from __future__ import annotations

import base64
import json

import pytest

from localdev.dataplane.filters import FilterError, FilterSet, kinesis_view, matches_pattern, sqs_view


def criteria(*patterns: dict) -> dict:
    return {"Filters": [{"Pattern": json.dumps(p)} for p in patterns]}


def test_exact_string_number_boolean_and_null_values():
    assert matches_pattern({"a": ["x"]}, {"a": "x"})
    assert not matches_pattern({"a": ["x"]}, {"a": "X"})
    assert matches_pattern({"n": [5]}, {"n": 5.0})
    assert not matches_pattern({"n": [5]}, {"n": "5"})
    assert matches_pattern({"b": [True]}, {"b": True})
    assert not matches_pattern({"b": [True]}, {"b": 1})
    assert matches_pattern({"z": [None]}, {"z": None})
    assert not matches_pattern({"z": [None]}, {})


def test_every_key_must_match_and_values_are_alternatives():
    pattern = {"a": ["x", "y"], "b": {"c": [1]}}
    assert matches_pattern(pattern, {"a": "y", "b": {"c": 1}})
    assert not matches_pattern(pattern, {"a": "y", "b": {"c": 2}})
    assert not matches_pattern(pattern, {"a": "q", "b": {"c": 1}})
    assert not matches_pattern(pattern, {"a": "x", "b": "not an object"})


def test_array_values_match_when_any_element_does():
    assert matches_pattern({"tags": ["red"]}, {"tags": ["blue", "red"]})
    assert not matches_pattern({"tags": ["red"]}, {"tags": ["blue"]})


def test_prefix_and_suffix():
    assert matches_pattern({"k": [{"prefix": "pay"}]}, {"k": "payment.created"})
    assert not matches_pattern({"k": [{"prefix": "pay"}]}, {"k": "refund"})
    assert matches_pattern({"k": [{"suffix": ".png"}]}, {"k": "a.png"})
    assert not matches_pattern({"k": [{"suffix": ".png"}]}, {"k": "a.jpg"})
    assert matches_pattern({"k": [{"prefix": {"equals-ignore-case": "PAY"}}]}, {"k": "payment"})


def test_anything_but():
    assert matches_pattern({"s": [{"anything-but": ["failed", "canceled"]}]}, {"s": "succeeded"})
    assert not matches_pattern({"s": [{"anything-but": ["failed", "canceled"]}]}, {"s": "failed"})
    assert not matches_pattern({"s": [{"anything-but": "failed"}]}, {"s": "failed"})
    assert matches_pattern({"s": [{"anything-but": {"prefix": "pay"}}]}, {"s": "refund"})
    assert not matches_pattern({"s": [{"anything-but": {"prefix": "pay"}}]}, {"s": "payment"})
    assert not matches_pattern({"s": [{"anything-but": "x"}]}, {}), "anything-but needs the field present"


def test_numeric_comparisons_and_ranges():
    rng = {"score": [{"numeric": [">=", 70, "<", 100]}]}
    assert matches_pattern(rng, {"score": 70})
    assert matches_pattern(rng, {"score": 99.5})
    assert not matches_pattern(rng, {"score": 100})
    assert not matches_pattern(rng, {"score": "80"}), "strings are not numbers"
    assert matches_pattern({"n": [{"numeric": ["=", 3]}]}, {"n": 3})
    assert not matches_pattern({"n": [{"numeric": [">", 3]}]}, {"n": True})


def test_exists():
    assert matches_pattern({"a": [{"exists": True}]}, {"a": "x"})
    assert not matches_pattern({"a": [{"exists": True}]}, {"b": "x"})
    assert matches_pattern({"a": [{"exists": False}]}, {"b": "x"})
    assert not matches_pattern({"a": [{"exists": False}]}, {"a": "x"})


def test_equals_ignore_case():
    assert matches_pattern({"c": [{"equals-ignore-case": "EUR"}]}, {"c": "eur"})
    assert not matches_pattern({"c": [{"equals-ignore-case": "EUR"}]}, {"c": "usd"})


def test_wildcard():
    assert matches_pattern({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a/b.png"})
    assert not matches_pattern({"f": [{"wildcard": "dir/*.png"}]}, {"f": "other/b.png"})
    assert matches_pattern({"f": [{"wildcard": "a.b"}]}, {"f": "a.b"})
    assert not matches_pattern({"f": [{"wildcard": "a.b"}]}, {"f": "axb"}), "only * is special"


def test_or_of_sub_patterns():
    pattern = {"$or": [{"a": ["1"]}, {"b": [{"numeric": [">", 5]}]}]}
    assert matches_pattern(pattern, {"a": "1"})
    assert matches_pattern(pattern, {"b": 6})
    assert not matches_pattern(pattern, {"a": "2", "b": 5})


def test_filters_are_ored_and_empty_criteria_match_everything():
    filters = FilterSet(criteria({"a": ["1"]}, {"a": ["2"]}))
    assert filters.matches({"a": "2"})
    assert not filters.matches({"a": "3"})
    assert FilterSet(None).matches({"anything": 1})
    assert FilterSet({"Filters": []}).matches({})


def test_more_than_five_filters_is_rejected():
    with pytest.raises(FilterError, match="at most 5"):
        FilterSet(criteria(*({"a": [str(i)]} for i in range(6))))


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"a": "x"}', "must be a list"),
        ('{"a": [{"numeric": [">"]}]}', "numeric needs"),
        ('{"a": [{"bogus": 1}]}', "is not one operator"),
    ],
)
def test_invalid_patterns_are_rejected_with_the_reason(pattern, message):
    with pytest.raises(FilterError, match=message):
        FilterSet({"Filters": [{"Pattern": pattern}]})


def test_sqs_body_is_parsed_when_it_is_a_json_object():
    record = {"messageId": "m", "body": json.dumps({"type": "payment.created", "amount": 500})}
    filters = FilterSet(criteria({"body": {"type": ["payment.created"], "amount": [{"numeric": [">", 100]}]}}))
    assert filters.matches(sqs_view(record))
    assert not filters.matches(sqs_view({**record, "body": json.dumps({"type": "other"})}))


def test_sqs_plain_text_body_matches_only_plain_patterns():
    plain = {"messageId": "m", "body": "hello"}
    assert FilterSet(criteria({"body": ["hello"]})).matches(sqs_view(plain))
    assert not FilterSet(criteria({"body": {"type": ["hello"]}})).matches(sqs_view(plain))


def test_kinesis_data_is_decoded_and_parsed():
    def record(data: bytes) -> dict:
        return {"kinesis": {"partitionKey": "p", "data": base64.b64encode(data).decode()}, "eventSource": "aws:kinesis"}

    filters = FilterSet(criteria({"data": {"risk": [{"numeric": [">=", 70]}]}}))
    assert filters.matches(kinesis_view(record(b'{"risk": 80}')))
    assert not filters.matches(kinesis_view(record(b'{"risk": 10}')))
    assert not filters.matches(kinesis_view(record(b"\xff not json")))
