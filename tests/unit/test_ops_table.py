"""paystream_ops.table on in-process moto: the parallel Scan reads every item of the asked types once,
across pages and segments, and groups them by payment with events in sequence order."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from paystream.adapters.dynamodb_store import serialize
from paystream_ops.environment import Environment
from paystream_ops.table import scan, snapshot

TABLE = "paystream-test-transactions"


@pytest.fixture
def environment():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield Environment({"region": "eu-west-1", "table_names": {"transactions": TABLE}}), client


def _put(client, **item):
    client.put_item(TableName=TABLE, Item=serialize(item))


def test_scan_reads_each_item_of_the_asked_types_once_across_pages_and_groups_them(environment):
    env, client = environment
    padding = "x" * 20_000  # ~60 pages of 1 MB over the 4 segments
    for n in range(300):
        for sequence in (3, 1, 2):  # stored out of order: the snapshot sorts them
            _put(client, pk=f"TXN#t{n}", sk=f"EVENT#{sequence:010d}", item_type="event", sequence=sequence,
                 padding=padding)
        _put(client, pk=f"TXN#t{n}", sk="PROJECTION", item_type="projection", last_sequence=3)
    _put(client, pk="STRIPE_EVENT#evt_1", sk="INBOX", item_type="stripe_event")
    _put(client, pk="BREAKER#stripe", sk="STATE", item_type="breaker")  # never read
    _put(client, pk="PAYMENT_INTENT#pi_1", sk="LINK", item_type="payment_intent_link")
    pages = []
    items = scan(env, on_page=pages.append, client=client)
    assert len(items) == 300 * 4 + 1
    assert len({(item["pk"], item["sk"]) for item in items}) == len(items)
    assert sum(pages) >= len(items) and len(pages) > 4  # it followed LastEvaluatedKey
    table = snapshot(items)
    assert len(table.payments) == 300 and table.event_count == 900 and len(table.stripe_events) == 1
    payment = table.payments["t7"]
    assert [event["sequence"] for event in payment.events] == [1, 2, 3]
    assert payment.projection["last_sequence"] == 3 and isinstance(payment.projection["last_sequence"], int)
    assert {item["item_type"] for item in scan(env, ["projection"], client=client)} == {"projection"}
