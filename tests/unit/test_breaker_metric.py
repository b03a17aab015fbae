"""The Stripe circuit breaker's openings as the EMF metric the `<prefix>-stripe-breaker-open` alarm watches
(terraform/modules/alarms): namespace and `service` dimension as the handlers' own metrics, printed when the
breaker opens, for every function that owns the breaker."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws
from lambda_testing import create_transactions_table, emf_metrics

from paystream.adapters import wiring
from paystream.config import Settings
# The POST /payments handler with its fake Stripe and in-process moto (threshold 2, no closed-state cache).
from test_payment_api_handlers import PAYMENT, api, post  # noqa: F401 - api is a fixture

REGION = "us-east-1"


def emf_blobs(captured: str, metric: str) -> list[dict]:
    """Every EMF blob in captured stdout that carries `metric`."""
    blobs = [json.loads(line) for line in captured.splitlines() if line.startswith("{") and '"_aws"' in line]
    return [b for b in blobs if any(m["Name"] == metric for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"])]


def test_post_payments_emits_one_breaker_opened_metric_when_its_failures_open_the_breaker(api, capsys):
    initiate, _, stripe, _ = api
    stripe.outcome = "unavailable"
    post(initiate, PAYMENT, key="a")
    assert "StripeBreakerOpened" not in [name for name, _ in emf_metrics(capsys.readouterr().out)]  # 1 failure of 2
    post(initiate, PAYMENT, key="b")  # the second failure opens the breaker
    out = capsys.readouterr().out
    assert [(n, v) for n, v in emf_metrics(out) if n == "StripeBreakerOpened"] == [("StripeBreakerOpened", 1.0)]
    [blob] = emf_blobs(out, "StripeBreakerOpened")
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    # What the alarm's metric queries name: namespace, metric and exactly the service dimension.
    assert directive["Namespace"] == "paystream" and directive["Dimensions"] == [["service"]]
    assert blob["service"] == "initiate_payment" and directive["Metrics"] == [{"Name": "StripeBreakerOpened", "Unit": "Count"}]
    post(initiate, PAYMENT, key="c")  # parked while open: no new opening
    assert "StripeBreakerOpened" not in [name for name, _ in emf_metrics(capsys.readouterr().out)]


@pytest.fixture()
def settings(monkeypatch):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb)
        wiring.dynamodb_client.cache_clear()
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "payment_retry")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "paystream-test")
        yield Settings(transactions_table="transactions", stripe_api_key_secret_id="k", parked_queue_url="q",
                       breaker_failure_threshold=1, breaker_cooldown_seconds=0.05, breaker_closed_cache_seconds=0)
        wiring.dynamodb_client.cache_clear()


def opened_metrics(capsys) -> list[tuple[str, str, float]]:
    """(namespace, service, value) of each StripeBreakerOpened blob printed since the last read."""
    out = capsys.readouterr().out
    return [(b["_aws"]["CloudWatchMetrics"][0]["Namespace"], b["service"], value)
            for b in emf_blobs(out, "StripeBreakerOpened")
            for value in (b["StripeBreakerOpened"] if isinstance(b["StripeBreakerOpened"], list) else [b["StripeBreakerOpened"]])]


@pytest.mark.parametrize("factory", [wiring.payment_service, wiring.refund_service, wiring.retry_service],
                         ids=["initiate_payment/resume_payments", "refund_payment", "payment_retry"])
def test_every_service_that_owns_the_breaker_reports_its_openings(settings, capsys, factory):
    breaker = factory(settings)._breaker
    breaker.record_failure(breaker.allow())  # threshold 1: closed -> open
    assert opened_metrics(capsys) == [("paystream-test", "payment_retry", 1.0)]


def test_a_failed_probe_reopening_the_breaker_counts_and_other_transitions_do_not(settings, capsys):
    breaker = wiring.stripe_breaker(settings)
    breaker.record_failure(breaker.allow())  # closed -> open
    assert len(opened_metrics(capsys)) == 1
    time.sleep(0.06)
    probe = breaker.allow()  # open -> half_open
    assert probe.is_probe and opened_metrics(capsys) == []
    breaker.record_failure(probe)  # half_open -> open
    assert len(opened_metrics(capsys)) == 1
    time.sleep(0.06)
    probe = breaker.allow()
    breaker.record_success(probe)  # half_open -> closed
    assert breaker.current().state == "closed" and opened_metrics(capsys) == []


def test_the_metric_is_emitted_even_when_the_ops_alert_cannot_be_published(settings, capsys, monkeypatch):
    def sns_down(self, subject, message):
        raise RuntimeError("sns unavailable")

    monkeypatch.setattr(wiring.OpsAlerts, "publish", sns_down)
    breaker = wiring.stripe_breaker(settings)
    breaker.record_failure(breaker.allow())
    assert breaker.current().state == "open" and len(opened_metrics(capsys)) == 1
