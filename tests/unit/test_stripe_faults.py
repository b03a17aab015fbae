"""The local Stripe's fault switches, in process: webhook chaos (duplicate, shuffled deliveries, each signed on
its own), the state a stopped launcher saves and a restarted one restores (objects, endpoints, idempotency
keys, undelivered events), and the stripe-restart command's errors. Webhook POSTs go to a fake, never the network."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
import stripe

from localdev.stripe_server import shuffled

# localstripe 1.15.10 registers plain-function routes, which aiohttp deprecates: its own noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Bare functions are deprecated:DeprecationWarning")

SECRET = "whsec_unit_" + "ab" * 8


@pytest.fixture()
def localstripe(monkeypatch):
    """localstripe's resources in this process with the launcher's patches; webhook POSTs recorded by a fake
    (an endpoint URL containing "down" refuses them) and answered 200."""
    from localdev import stripe_server

    stripe_server.make_app()
    from localstripe import resources, webhooks

    posted: list[dict] = []

    async def post(url, payload, headers):
        if "down" in url:
            raise OSError("connection refused")
        posted.append({"url": url, "payload": payload, "signature": headers["Stripe-Signature"],
                       "event": json.loads(payload)})
        return 200

    monkeypatch.setattr(stripe_server, "_post", post)
    monkeypatch.setattr(stripe_server, "WEBHOOK_DELAY_SECONDS", 0)
    resources.store.clear()
    webhooks._webhooks.clear()
    stripe_server._IDEMPOTENT_RESPONSES.clear()
    stripe_server.configure_webhook_chaos()
    yield stripe_server, resources, webhooks, posted
    stripe_server.configure_webhook_chaos()
    stripe_server._IDEMPOTENT_RESPONSES.clear()
    resources.store.clear()
    webhooks._webhooks.clear()


async def _settle():
    """Let the scheduled webhook senders (and chaos flushes they schedule) run to completion."""
    for _ in range(10):
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not pending:
            return
        await asyncio.gather(*pending)


def _pay(resources, amount: int, transaction_id: str):
    return resources.PaymentIntent._api_create(amount=str(amount), currency="usd", payment_method="pm_card_visa",
                                               confirm="true", metadata={"transaction_id": transaction_id})


def _verified(delivery: dict) -> stripe.Event:
    return stripe.Webhook.construct_event(delivery["payload"], delivery["signature"], SECRET)


# ------------------------------------------------------------------------------------------------ webhook chaos


def test_chaos_is_off_by_default_and_each_event_is_delivered_once_in_order(localstripe):
    stripe_server, resources, webhooks, posted = localstripe
    assert stripe_server.webhook_chaos_status()["on"] is False

    async def scenario():
        webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
        intents = [_pay(resources, 100 + i, f"t{i}") for i in range(3)]
        await _settle()
        return intents

    intents = asyncio.run(scenario())
    assert [d["event"]["data"]["object"]["id"] for d in posted] == [i.id for i in intents]
    assert stripe_server.webhook_chaos_status()["counts"]["deliveries"] == 0


def test_chaos_delivers_every_event_n_times_shuffled_each_delivery_signed(localstripe):
    stripe_server, resources, webhooks, posted = localstripe
    status = stripe_server.configure_webhook_chaos(duplicate=3, shuffle_window_s=0.2)
    assert status == {"on": True, "duplicate": 3, "shuffle_window_s": 0.2,
                      "counts": {"events": 0, "deliveries": 0, "duplicates": 0, "out_of_order": 0, "failed": 0, "held": 0}}

    async def scenario():
        webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
        intents = [_pay(resources, 100 + i, f"t{i}") for i in range(4)]
        resources.Refund(payment_intent=intents[0].id, amount=40)  # a second event of the same PaymentIntent
        await asyncio.sleep(0.05)
        held = stripe_server.webhook_chaos_status()["counts"]["held"]  # due, waiting for the window's end
        await _settle()
        return intents, held

    intents, held = asyncio.run(scenario())
    events = [_verified(d) for d in posted]  # every delivery verifies with the endpoint's secret
    ids = [e.id for e in events]
    created_order = [e.id for e in resources.Event._api_list_all(None)._list]
    assert held == 15 and len(created_order) == 5
    assert sorted(ids) == sorted(created_order * 3)
    first_seen = list(dict.fromkeys(ids))
    assert first_seen != created_order  # shuffled: some event arrived first before one due earlier
    # Duplicates carry the same payload (only the signature is per delivery).
    by_id: dict[str, set] = {}
    for d in posted:
        by_id.setdefault(d["event"]["id"], set()).add(d["payload"])
    assert all(len(payloads) == 1 for payloads in by_id.values())

    counts = stripe_server.webhook_chaos_status()["counts"]
    # An event is out of order when it arrives first while an event due before it has not arrived yet.
    out_of_order, arrived = 0, set()
    for eid in first_seen:
        out_of_order += any(earlier not in arrived for earlier in created_order[:created_order.index(eid)])
        arrived.add(eid)
    assert counts == {"events": 5, "deliveries": 15, "duplicates": 10, "out_of_order": out_of_order, "failed": 0, "held": 0}
    assert out_of_order >= 1
    # Delivered (to every endpoint) as far as Stripe's delivery_success and pending_webhooks report.
    assert all(stripe_server.delivery_succeeded(e) for e in resources.Event._api_list_all(None)._list)
    assert {e._export()["pending_webhooks"] for e in resources.Event._api_list_all(None)._list} == {0}


def test_chaos_counts_failed_deliveries_and_the_event_stays_undelivered(localstripe):
    stripe_server, resources, webhooks, posted = localstripe
    stripe_server.configure_webhook_chaos(duplicate=2, shuffle_window_s=0)

    async def scenario():
        webhooks.register_webhook("paystream", "http://down/webhooks/stripe", SECRET, None)
        intent = _pay(resources, 500, "t1")
        await _settle()
        return intent

    asyncio.run(scenario())
    counts = stripe_server.webhook_chaos_status()["counts"]
    assert (counts["events"], counts["deliveries"], counts["failed"]) == (1, 2, 2)
    event = resources.Event._api_list_all(None)._list[0]
    assert not stripe_server.delivery_succeeded(event) and event._export()["pending_webhooks"] == 1


def test_shuffled_always_delivers_some_event_before_an_earlier_one():
    deliveries = [(intake, copy) for intake in (1, 2, 3) for copy in range(2)]
    for seed in range(200):
        order = shuffled(deliveries, key=lambda d: d[0], rng=random.Random(seed))
        assert sorted(order) == deliveries
        firsts = list(dict.fromkeys(d[0] for d in order))
        assert firsts != sorted(firsts), (seed, order)
    single = [(7, 0), (7, 1)]
    assert sorted(shuffled(single, key=lambda d: d[0], rng=random.Random(0))) == single


class _Request:
    """What the chaos route reads of an aiohttp request."""

    def __init__(self, method: str, body=None):
        self.method = method
        self.can_read_body = body is not None
        self._body = body

    async def json(self):
        if isinstance(self._body, str):
            raise json.JSONDecodeError("Expecting value", self._body, 0)
        return self._body


def _route(stripe_server, method: str, body=None) -> tuple[int, dict]:
    response = asyncio.run(stripe_server._webhook_chaos_route(_Request(method, body)))
    return response.status, json.loads(response.body)


@pytest.mark.parametrize("body", [{"duplicate": 0}, {"duplicate": 11}, {"duplicate": "2"}, {"duplicate": True},
                                  {"shuffle_window_s": -1}, {"shuffle_window_s": 61}, {"shuffle_window_s": "3"},
                                  [1, 2], "not json"])
def test_chaos_route_refuses_bad_settings_with_400_and_changes_nothing(localstripe, body):
    stripe_server = localstripe[0]
    status, answer = _route(stripe_server, "POST", body)
    assert status == 400 and answer["error"] == "invalid_request" and answer["message"]
    assert stripe_server.webhook_chaos_status()["on"] is False


def test_chaos_route_switches_on_shows_and_switches_off(localstripe):
    stripe_server = localstripe[0]
    status, answer = _route(stripe_server, "POST", {"duplicate": 2, "shuffle_window_s": 3})
    assert status == 200 and (answer["on"], answer["duplicate"], answer["shuffle_window_s"]) == (True, 2, 3.0)
    assert _route(stripe_server, "GET") == (200, answer)
    stripe_server._CHAOS_COUNTS["deliveries"] = 7  # what the deliveries meanwhile counted
    status, off = _route(stripe_server, "DELETE")
    assert status == 200 and (off["on"], off["duplicate"], off["shuffle_window_s"]) == (False, 1, 0.0)
    assert off["counts"]["deliveries"] == 7  # switching off keeps the counts: the final figures
    status, again = _route(stripe_server, "POST", {"duplicate": 2})
    assert status == 200 and again["counts"]["deliveries"] == 0  # a new run starts from zero
    assert _route(stripe_server, "PUT")[0] == 405


# ------------------------------------------------------------------------------------------------ restart


def test_a_restarted_launcher_keeps_objects_endpoints_keys_and_sends_what_it_had_not_delivered(localstripe, tmp_path):
    stripe_server, resources, webhooks, posted = localstripe
    path = tmp_path / "stripe-state.pickle"

    async def before_the_stop():
        webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
        delivered = _pay(resources, 1000, "t-delivered")
        await _settle()
        # Stopped within the second localstripe waits before sending: this event's webhook is not out yet.
        pending = _pay(resources, 2000, "t-pending")
        return delivered, pending, stripe_server.save_state(path)

    stripe_server._IDEMPOTENT_RESPONSES[("Bearer sk_test", "paystream:t-pending:create")] = (
        "POST /v1/payment_intents", b"amount=2000", 200, b'{"id": "pi_x"}', "application/json")
    delivered, pending, saved = asyncio.run(before_the_stop())
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the test API key in the idempotency scopes
    assert [d["event"]["data"]["object"]["id"] for d in posted] == [delivered.id]

    # A new process: nothing in memory.
    resources.store.clear()
    webhooks._webhooks.clear()
    stripe_server._IDEMPOTENT_RESPONSES.clear()
    undelivered = stripe_server.load_state(path)

    assert len(resources.store) == saved
    assert resources.PaymentIntent._api_retrieve(pending.id).status == "succeeded"
    assert resources.PaymentIntent._api_retrieve(delivered.id).amount == 1000
    assert stripe_server.registered_webhooks() == {"paystream": {"url": "http://platform/webhooks/stripe", "events": None}}
    assert ("Bearer sk_test", "paystream:t-pending:create") in stripe_server._IDEMPOTENT_RESPONSES
    assert [e.data["object"]["id"] for e in undelivered] == [pending.id]

    async def after_the_start():
        for event in undelivered:
            await stripe_server._send_webhook(event)

    asyncio.run(after_the_start())
    assert [d["event"]["data"]["object"]["id"] for d in posted] == [delivered.id, pending.id]
    assert _verified(posted[-1]).data.object.id == pending.id
    assert all(stripe_server.delivery_succeeded(e) for e in resources.Event._api_list_all(None)._list)


def test_a_late_delivery_is_signed_at_delivery_time_as_stripe_signs_each_attempt(localstripe):
    stripe_server, resources, webhooks, posted = localstripe

    async def scenario():
        webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
        _pay(resources, 300, "t-late")
        event = resources.Event._api_list_all(None)._list[0]
        event.created -= 3600  # an event from an hour ago, delivered only now (Stripe was down)
        await _settle()
        return event

    event = asyncio.run(scenario())
    signed_at = int(posted[0]["signature"].split(",")[0].removeprefix("t="))
    assert abs(signed_at - time.time()) < 60 and signed_at > event.created + 3000
    assert _verified(posted[0]).id == event.id  # within the receiver's 300 s tolerance


def test_an_endpoint_reached_before_the_stop_is_not_sent_the_event_again(localstripe, tmp_path):
    stripe_server, resources, webhooks, posted = localstripe
    path = tmp_path / "state"

    async def scenario():
        webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
        webhooks.register_webhook("other", "http://down/hook", SECRET, None)  # refuses: still owed the event
        _pay(resources, 700, "t-two-endpoints")
        await _settle()
        stripe_server.save_state(path)

    asyncio.run(scenario())
    assert len(posted) == 1
    undelivered = stripe_server.load_state(path)
    assert len(undelivered) == 0  # its sender finished (one endpoint failed): reconcile's business, as before
    event = resources.Event._api_list_all(None)._list[0]
    assert event.__dict__["_delivered_to"] == {"paystream"} and event._export()["pending_webhooks"] == 1


def test_keep_state_saves_on_stop_and_a_restore_consumes_the_file(localstripe, tmp_path):
    stripe_server, resources, webhooks, _ = localstripe
    path = tmp_path / "stripe-state.pickle"

    class App:
        def __init__(self):
            self.on_startup, self.on_cleanup = [], []

    first = App()
    stripe_server._keep_state(first, path, restore=True)  # nothing saved yet: starts empty
    webhooks.register_webhook("paystream", "http://platform/webhooks/stripe", SECRET, None)
    asyncio.run(first.on_cleanup[0](first))  # the server stops
    assert path.exists()

    webhooks._webhooks.clear()
    second = App()
    stripe_server._keep_state(second, path, restore=True)
    assert not path.exists()  # consumed: a later crash cannot bring this older state back
    assert "paystream" in stripe_server.registered_webhooks()
    asyncio.run(second.on_startup[0](second))


def test_a_file_that_is_not_a_saved_state_is_refused(localstripe, tmp_path):
    stripe_server = localstripe[0]
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a saved Stripe state"):
        stripe_server.load_state(bad)
    import pickle

    bad.write_bytes(pickle.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format 1"):
        stripe_server.load_state(bad)


# ------------------------------------------------------------------------------------------------ stripe-restart


def test_stripe_restart_without_a_stack_is_one_clear_line(tmp_path, capsys):
    from localdev.stripe_faults import main, stop_stripe
    from localdev.stack import StackError

    with pytest.raises(StackError, match="no embedded local stack"):
        stop_stripe(tmp_path)
    assert main(["--state-dir", str(tmp_path), "--down-for", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stripe-restart: no embedded local stack")
    assert main(["--state-dir", str(tmp_path), "--down-for", "-1"]) == 2


def test_stripe_restart_refuses_a_stack_whose_stripe_is_not_running(tmp_path):
    from localdev.stack import StackError, StackState
    from localdev.stripe_faults import stop_stripe

    StackState(ports={"stripe": 1}, pids={}).save(tmp_path / "stack.json")
    with pytest.raises(StackError, match="localstripe is not running"):
        stop_stripe(tmp_path)
