"""localdev.bench_fraud's pure parts: the Kinesis event it hands fraud_scorer is the one the local data plane
builds for the fraud stream mapping, and a batch has the customer mix the bench reports."""

from __future__ import annotations

import collections
import json
import random
from datetime import datetime, timezone
from types import SimpleNamespace

from localdev.bench_fraud import batch_plan, kinesis_event, warm_up_plan
from localdev.dataplane.pollers.streams import KinesisSource

STREAM_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/paystream-local-fraud"
ROLE_ARN = "arn:aws:iam::000000000000:role/fraud_scorer"


def test_the_kinesis_event_is_the_one_the_data_plane_delivers():
    raws = [("shardId-000000000001", {
        "SequenceNumber": f"4959{n:040d}", "PartitionKey": f"cus_{n}",
        "Data": json.dumps({"transaction_id": f"t{n}", "amount": 100 + n}).encode(),
        "ApproximateArrivalTimestamp": datetime(2026, 11, 22, 10, 0, n, 123000, tzinfo=timezone.utc),
    }) for n in range(3)]
    poller = SimpleNamespace(clients=lambda service: None, source_arn=STREAM_ARN, role_arn=ROLE_ARN,
                             region="us-east-1", filters=SimpleNamespace(matches=lambda view: True))
    source = KinesisSource(poller)

    event = kinesis_event(raws, STREAM_ARN, "us-east-1", ROLE_ARN)

    assert event["Records"] == [source.entry(raw, shard_id).record for shard_id, raw in raws]


def test_a_batch_mixes_returning_new_and_repeated_customers():
    rng = random.Random(1)
    returning = warm_up_plan(rng, "a")

    batch = batch_plan(rng, "b", returning)

    per_customer = collections.Counter(p.customer_id for p in batch)
    assert len(batch) == 100 and len({p.customer_id for p in returning}) == len(returning) == 20
    assert sorted(collections.Counter(per_customer.values()).items()) == [(1, 70), (3, 10)]
    assert len({c for c in per_customer if c in {p.customer_id for p in returning}}) == 20
    assert all(p.device_id and p.ip_address.startswith("192.0.2.") for p in batch)
    # Shared addresses: fewer IPs than customers, so IP profiles are read and written by several customers.
    assert len({p.ip_address for p in batch}) < len(per_customer)
