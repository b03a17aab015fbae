"""FraudConfigSource's default SSM provider: the fraud configuration is read at every cold start of
fraud_scorer, fraud_review and capture_payment, so how its client is built is part of their cold start."""

from __future__ import annotations

import json

import boto3
import boto3.session
from moto import mock_aws

from paystream.adapters.fraud_profiles import FraudConfigSource

PARAMETER = "/paystream/test/fraud-config"


def test_the_default_provider_reads_through_boto3s_default_session(monkeypatch):
    # A second boto3 Session has its own botocore loader, which scans botocore's data directory again
    # (thousands of stat calls: tens of milliseconds of the cold start). The provider must use a client
    # of the default session, which the function's DynamoDB client already warmed.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String",
                                          Value=json.dumps({"thresholds": {"review": 65, "block": 90}}))
        sessions: list[boto3.session.Session] = []
        original_init = boto3.session.Session.__init__

        def counting_init(self, *args, **kwargs):
            sessions.append(self)
            original_init(self, *args, **kwargs)

        monkeypatch.setattr(boto3.session.Session, "__init__", counting_init)

        config = FraudConfigSource(PARAMETER).load()

    assert (config.thresholds.review, config.thresholds.block) == (65, 90)
    assert sessions == [], "the SSM provider built a boto3 Session of its own"
