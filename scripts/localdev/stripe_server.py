"""`python -m localdev stripe [--host 127.0.0.1] [--port 8420] [--state-file F [--restore]]` — localstripe
without disk persistence (its state survives a stop and restart only through --state-file, see `save_state`).

localstripe 1.15.10 pickles its whole state to the hard-coded /tmp/localstripe.pickle on every write
and reloads it at start: writes get slower as state grows, two instances clobber each other and one
can crash reading the other's half-written file. This launcher turns both off (state lives in this
process only) and adds a health route for whoever starts it:

    GET /_localdev/health -> 200 {"status": "ok", "instance_id": "<uuid of this process>", "persistence": false}
    GET /_localdev/webhooks -> 200 {"webhooks": {name: {"url", "events"}}} (the registered endpoints, no secrets)
    POST|GET|DELETE /_localdev/webhook-chaos: duplicate and shuffled webhook deliveries (fault injection)

It needs no API key (localstripe's own routes do). It also records whether each event's webhook delivery
succeeded and lists events by `delivery_success` and PaymentIntents by `created`, as Stripe does (see
`record_webhook_deliveries`, `list_as_stripe_does`: what `paystream-ops reconcile` reads).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HEALTH_PATH = "/_localdev/health"
INSTANCE_ID = str(uuid.uuid4())


def disable_disk_persistence() -> None:
    """Keep localstripe's state in memory only (patching its Store class, not site-packages)."""
    from localstripe import resources

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None


OUTAGE_PATH = "/_localdev/outage"
# The registered webhook endpoints (name -> url, events; never the secrets), so a test that points an endpoint
# elsewhere for a while can put back exactly what the stack registered.
WEBHOOKS_PATH = "/_localdev/webhooks"
# A simulated Stripe outage (fault injection for the local stack): while on, the API answers 503.
_OUTAGE = {"down": False}


async def _health(request, handler):
    from aiohttp import web

    if request.path == HEALTH_PATH:
        return web.json_response({"status": "ok", "instance_id": INSTANCE_ID, "persistence": False,
                                  "outage": _OUTAGE["down"], "restored_objects": _RESTORED["objects"]})
    if request.path == WEBHOOK_CHAOS_PATH:
        return await _webhook_chaos_route(request)
    if request.path == WEBHOOKS_PATH and request.method == "GET":
        return web.json_response({"webhooks": registered_webhooks()})
    if request.path == OUTAGE_PATH and request.method == "POST":
        body = await request.json() if request.can_read_body else {}
        _OUTAGE["down"] = bool(body.get("down"))
        return web.json_response({"outage": _OUTAGE["down"]})
    if _OUTAGE["down"] and request.path.startswith("/v1/"):
        return web.json_response(
            {"error": {"type": "api_error", "message": "Stripe is unavailable (simulated outage: POST "
                       f"{OUTAGE_PATH} {{\"down\": false}} ends it)"}}, status=503)
    return await handler(request)


def set_outage(stripe_api_base: str, down: bool, timeout: float = 5) -> None:
    """Start or end a simulated Stripe outage on a running launcher."""
    request = urllib.request.Request(f"{stripe_api_base.rstrip('/')}{OUTAGE_PATH}", method="POST",
                                     data=json.dumps({"down": down}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        resp.read()


def accept_stripe_fields_the_platform_sends() -> None:
    """Let localstripe accept PaymentIntent `description` and Refund `reason`, as Stripe does.

    localstripe 1.15.10 answers 400 "Unexpected description" / "Unexpected reason"; the platform
    sends both (they are part of Stripe's API), so they are stored on the object instead.
    """
    from localstripe import resources

    def keep(cls, field):
        upstream_init = cls.__init__
        if getattr(upstream_init, "_keeps", None) == field:
            return

        def __init__(self, *args, **kwargs):
            value = kwargs.pop(field, None)
            upstream_init(self, *args, **kwargs)
            setattr(self, field, value)

        __init__._keeps = field
        cls.__init__ = __init__

    keep(resources.PaymentIntent, "description")
    keep(resources.Refund, "reason")
    accept_cancellation_reason()


def accept_cancellation_reason() -> None:
    """Let localstripe's PaymentIntent cancel take Stripe's `cancellation_reason` (it answers 400
    "Unexpected cancellation_reason"); the reason is kept on the PaymentIntent, as Stripe shows it.

    localstripe.server binds its extra routes from `extra_apis` when it is imported, so this must run
    before that import (make_app does).
    """
    import sys

    from localstripe import resources

    intent = resources.PaymentIntent
    upstream = intent._api_cancel
    if getattr(upstream, "_accepts_reason", False):
        return
    if "localstripe.server" in sys.modules:
        raise RuntimeError("accept_cancellation_reason() must run before localstripe.server is imported")

    def _api_cancel(cls, id, cancellation_reason=None, **kwargs):
        obj = upstream(id, **kwargs)
        obj.cancellation_reason = cancellation_reason
        return obj

    _api_cancel._accepts_reason = True
    intent._api_cancel = classmethod(_api_cancel)
    resources.extra_apis[:] = [(method, path, intent._api_cancel if func == upstream else func)
                               for method, path, func in resources.extra_apis]


# (api key, Idempotency-Key) -> (method + path, request body, status, response body, content type)
_IDEMPOTENT_RESPONSES: dict[tuple[str, str], tuple[str, bytes, int, bytes, str]] = {}


async def _idempotency(request, handler):
    """Honour `Idempotency-Key` on POST as Stripe does (localstripe ignores it): the same key with the
    same request replays the first response; with a different request it is a 400 idempotency_error."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    from aiohttp import web

    body = await request.read()
    scope = (request.headers.get("Authorization", ""), key)
    target = f"{request.method} {request.path}"
    cached = _IDEMPOTENT_RESPONSES.get(scope)
    if cached is not None:
        cached_target, cached_body, status, payload, content_type = cached
        if (cached_target, cached_body) != (target, body):
            return web.json_response(
                {"error": {"type": "idempotency_error", "message": f"Keys for idempotent requests can only be used "
                           f"with the same parameters they were first used with. Try using a key other than '{key}' "
                           "if you meant to execute a different request."}},
                status=400,
            )
        return web.Response(body=payload, status=status, content_type=content_type,
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    if 200 <= response.status < 500 and response.status != 429 and isinstance(response, web.Response):
        _IDEMPOTENT_RESPONSES[scope] = (target, body, response.status, response.body, response.content_type)
    return response


def make_app():
    """localstripe's aiohttp app, with persistence off, Stripe's idempotency keys honoured and the
    health route in front of its auth."""
    disable_disk_persistence()
    accept_stripe_fields_the_platform_sends()
    refuse_refunds_above_what_is_left()
    announce_payment_intents_as_stripe_does()
    record_webhook_deliveries()
    list_as_stripe_does()
    from aiohttp import web
    from localstripe.server import app

    for middleware in (_idempotency, _rate_limit, _health):  # health ends up first, then rate limiting
        if not any(getattr(m, "__wrapped__", m) is middleware for m in app.middlewares):
            app.middlewares.insert(0, web.middleware(_wrap(middleware)))
    return app


def _wrap(middleware):
    async def wrapped(request, handler):
        return await middleware(request, handler)

    wrapped.__wrapped__ = middleware
    return wrapped


def health_url(stripe_api_base: str) -> str:
    return stripe_api_base.rstrip("/") + HEALTH_PATH


def is_healthy(stripe_api_base: str, timeout: float = 2) -> bool:
    """True when this launcher answers at stripe_api_base (a plain localstripe has no health route)."""
    try:
        with urllib.request.urlopen(health_url(stripe_api_base), timeout=timeout) as resp:
            return json.loads(resp.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False


def register_webhook(stripe_api_base: str, name: str, url: str, secret: str, timeout: float = 10) -> None:
    """Make localstripe send its signed webhooks to `url` (signed with `secret`), under `name`.

    Registering the same name again replaces that endpoint.
    """
    body = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    endpoint = f"{stripe_api_base.rstrip('/')}/_config/webhooks/{urllib.parse.quote(name, safe='')}"
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, data=body, method="POST"), timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        raise RuntimeError(
            f"localstripe at {stripe_api_base} refused webhook {name!r} -> {url} (HTTP {exc.code}): "
            "the url must start with http and the secret must not be empty"
        ) from exc


def registered_webhooks() -> dict[str, dict]:
    from localstripe import webhooks

    return {name: {"url": hook.url, "events": hook.events} for name, hook in webhooks._webhooks.items()}


def webhook_endpoints(stripe_api_base: str, timeout: float = 5) -> dict[str, dict]:
    """The endpoints a running launcher sends its webhooks to: {name: {"url", "events"}}."""
    with urllib.request.urlopen(f"{stripe_api_base.rstrip('/')}{WEBHOOKS_PATH}", timeout=timeout) as resp:
        return json.loads(resp.read())["webhooks"]


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Lets a restarted server take the port back from connections in TIME_WAIT; a port someone
    # is still listening on stays refused.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev stripe", description="run localstripe without disk persistence")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state-file", help="save the Stripe state here when stopped (a restart can restore it)")
    parser.add_argument("--restore", action="store_true", help="start from --state-file's saved state (then delete it)")
    args = parser.parse_args(argv)
    if args.restore and not args.state_file:
        print("stripe: --restore needs --state-file", file=sys.stderr)
        return 2

    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"stripe: port {args.port} on {args.host} is already in use (a running local stack? "
                  "`make local-down` stops it); free it or pass --port", file=sys.stderr)
        else:
            print(f"stripe: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1

    from aiohttp import web

    # localstripe reports webhook deliveries on the aiohttp.access logger.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = make_app()
    if args.state_file:
        try:
            _keep_state(app, args.state_file, args.restore)
        except (OSError, ValueError) as exc:
            sock.close()
            print(f"stripe: cannot restore the saved Stripe state: {exc}", file=sys.stderr)
            return 1
    print(f"localstripe (no disk persistence) on http://{args.host}:{args.port}, health {HEALTH_PATH}", flush=True)
    # A bounded graceful stop: requests still in flight after STOP_GRACE_SECONDS are cut (as an outage would
    # cut them) and the state is saved right after. aiohttp's default (60 s) outlasted the launcher's kill
    # under load: killed before its on_cleanup, localstripe restarted empty.
    web.run_app(app, sock=sock, print=None, access_log=logging.getLogger("aiohttp.access"),
                shutdown_timeout=STOP_GRACE_SECONDS)
    return 0


def refuse_refunds_above_what_is_left() -> None:
    """Refund as Stripe does: never more than what is left on the charge.

    localstripe 1.15.10 accepts any refund amount (a charge can be refunded twice over) and, when no
    amount is given, refunds the whole charge again instead of what is left. Stripe refuses with an
    invalid_request_error: code `charge_already_refunded` when nothing is left, otherwise on the
    `amount` parameter; without an amount it refunds the remainder.
    """
    from localstripe import resources
    from localstripe.errors import UserError

    upstream_init = resources.Refund.__init__
    if getattr(upstream_init, "_refuses_over_refunds", False):
        return

    def refunded_charge(charge, payment_intent):
        # Only well-formed ids of existing objects: anything else is left to localstripe's own errors.
        try:
            if isinstance(charge, str) and charge.startswith("ch_"):
                return resources.Charge._api_retrieve(charge)
            if charge is None and isinstance(payment_intent, str) and payment_intent.startswith("pi_"):
                latest = resources.PaymentIntent._api_retrieve(payment_intent).latest_charge
                return latest if latest is not None and latest.status == "succeeded" else None
        except UserError:
            return None
        return None

    def __init__(self, charge=None, payment_intent=None, amount=None, **kwargs):
        charge_obj = refunded_charge(charge, payment_intent)
        requested = resources.try_convert_to_int(amount)
        if charge_obj is not None and (requested is None or isinstance(requested, int)):
            remaining = charge_obj.amount - charge_obj.amount_refunded
            if remaining <= 0:
                raise UserError(400, f"Charge {charge_obj.id} has already been refunded.",
                                {"code": "charge_already_refunded"})
            if requested is None:
                amount = remaining
            elif requested > remaining:
                raise UserError(400, f"Refund amount ({requested} {charge_obj.currency}) is greater than unrefunded "
                                f"amount on charge ({remaining} {charge_obj.currency})", {"param": "amount"})
        upstream_init(self, charge=charge, payment_intent=payment_intent, amount=amount, **kwargs)

    __init__._refuses_over_refunds = True
    resources.Refund.__init__ = __init__


def announce_payment_intents_as_stripe_does() -> None:
    """Send the webhooks Stripe sends for manual capture and cancellation.

    localstripe 1.15.10 sends nothing when a manual-capture PaymentIntent is authorized (status
    `requires_capture`), where Stripe sends `payment_intent.amount_capturable_updated` (and
    `payment_intent.succeeded` once it is captured, which localstripe does send); and nothing on cancel,
    where Stripe sends `payment_intent.canceled`.
    """
    from localstripe import resources
    from localstripe.webhooks import schedule_webhook

    intent = resources.PaymentIntent
    if getattr(intent._create_charge, "_announces_authorizations", False):
        return
    upstream_create_charge = intent._create_charge

    def _create_charge(self, on_failure_now):
        upstream_create_charge(self, on_failure_now)
        if self.status == "requires_capture":
            schedule_webhook(resources.Event("payment_intent.amount_capturable_updated", self))

    # localstripe cancels by setting `_canceled`; its routes are bound at import, so the flag is the
    # one place to hook whatever the import order.
    def _get_canceled(self):
        return self.__dict__.get("_canceled_flag", False)

    def _set_canceled(self, value):
        was = self.__dict__.get("_canceled_flag", False)
        self.__dict__["_canceled_flag"] = value
        if value and not was:
            schedule_webhook(resources.Event("payment_intent.canceled", self))

    _create_charge._announces_authorizations = True
    intent._create_charge = _create_charge
    intent._canceled = property(_get_canceled, _set_canceled)


RATE_LIMIT_PATH = "/_localdev/rate_limit"
# Fault injection: the next `requests` POSTs under `path_prefix` answer 429 as Stripe's rate limiter does.
_RATE_LIMIT = {"requests": 0, "path_prefix": "/v1/"}


async def _rate_limit(request, handler):
    """`POST /_localdev/rate_limit {"requests": n, "path_prefix": "/v1/payment_intents"}` makes the next n
    matching POSTs answer 429 `rate_limit` (before idempotency: Stripe saves no result for a rate-limited
    request, so a retry with the same Idempotency-Key executes). `{"requests": 0}` ends it."""
    from aiohttp import web

    if request.path == RATE_LIMIT_PATH and request.method == "POST":
        body = await request.json() if request.can_read_body else {}
        _RATE_LIMIT["requests"] = max(0, int(body.get("requests") or 0))
        _RATE_LIMIT["path_prefix"] = str(body.get("path_prefix") or "/v1/")
        return web.json_response(dict(_RATE_LIMIT))
    if request.method == "POST" and _RATE_LIMIT["requests"] > 0 and request.path.startswith(_RATE_LIMIT["path_prefix"]):
        _RATE_LIMIT["requests"] -= 1
        return web.json_response(
            {"error": {"type": "invalid_request_error", "code": "rate_limit",
                       "message": "Too many requests hit the API too quickly (simulated: POST "
                                  f"{RATE_LIMIT_PATH} on the local Stripe)."}}, status=429)
    return await handler(request)


def set_rate_limit(stripe_api_base: str, requests: int, path_prefix: str = "/v1/", timeout: float = 5) -> dict:
    """Make the next `requests` POSTs under `path_prefix` on a running launcher answer 429."""
    request = urllib.request.Request(f"{stripe_api_base.rstrip('/')}{RATE_LIMIT_PATH}", method="POST",
                                     data=json.dumps({"requests": requests, "path_prefix": path_prefix}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


# ------------------------------------------------------------------ webhook deliveries and event listing
# paystream-ops reconcile asks Stripe for the events whose webhook delivery failed (GET /v1/events with
# delivery_success=false) and ingests them storage-first. localstripe 1.15.10 keeps its events and lists
# them by `created` and `type` only; it neither records whether a delivery succeeded nor filters on it,
# sends no charge.refunded, and lists PaymentIntents without the `created` filter. These patches add that.

WEBHOOK_DELAY_SECONDS = 1  # localstripe waits 1 s before sending (the platform's own write lands first)
WEBHOOK_TIMEOUT_SECONDS = 30  # a hanging endpoint is a failed delivery, not a task that never ends


async def _post(url: str, payload: bytes, headers: dict[str, str]) -> int:
    """POST one webhook and return the HTTP status (a seam the unit tests replace)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, data=payload, headers=headers) as response:
            return response.status


async def _send_webhook(event) -> None:
    """localstripe's webhook sender (same payload and 1 s delay), recording on the event which endpoints
    it reached, how many are still pending and whether any delivery failed (what Stripe's delivery_success
    filter and `pending_webhooks` report). Sent again after a restart (`load_state`) it goes only to the
    endpoints it had not reached. With webhook chaos on, its deliveries go through `_chaos_take` instead."""
    import asyncio

    from localstripe import webhooks

    delivered = event.__dict__.setdefault("_delivered_to", set())
    targets = [name for name, hook in list(webhooks._webhooks.items())
               if (hook.events is None or event.type in hook.events) and name not in delivered]
    event.__dict__["_pending_webhooks"] = len(targets)
    event.__dict__.setdefault("_delivery_failed", False)
    event.__dict__["_delivery_done"] = False
    # One payload for every delivery of the event (duplicates included): only the signature changes.
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode("utf-8")
    await asyncio.sleep(WEBHOOK_DELAY_SECONDS)
    if _chaos_on():
        _chaos_take(event, targets, payload)
        return
    for name in targets:
        await _deliver(event, name, payload)
    event.__dict__["_delivery_done"] = True


async def _deliver(event, name: str, payload: bytes) -> bool:
    """POST one delivery of `event` to the endpoint registered as `name` (as registered now), signed as
    Stripe signs each delivery attempt: with the time of the attempt (localstripe signs with the event's
    `created`, so an event delivered more than 300 s after it happened — after an outage — would fail
    every receiver's tolerance check). True when the endpoint answered 2xx."""
    import hashlib
    import hmac

    from localstripe import webhooks

    log = logging.getLogger("aiohttp.access")
    hook = webhooks._webhooks.get(name)
    status, reason = None, "failed: the endpoint is no longer registered"
    if hook is not None:
        signed_at = int(time.time())
        signature = hmac.new(hook.secret.encode("utf-8"), b"%d.%s" % (signed_at, payload), hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Stripe-Signature": "t=%d,v1=%s" % (signed_at, signature)}
        try:
            status = await _post(hook.url, payload, headers)
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is a failed delivery, never a crash
            reason = f"failed: {type(exc).__name__} {exc}"
        else:
            reason = f"failed with response code {status}"
    delivered = event.__dict__.setdefault("_delivered_to", set())
    if status is not None and 200 <= status < 300:
        if name not in delivered:  # a duplicate delivery reaches an endpoint already reached
            delivered.add(name)
            event.__dict__["_pending_webhooks"] = max(0, event.__dict__.get("_pending_webhooks", 1) - 1)
        log.info('webhook "%s" %s successfully delivered', event.type, event.id)
        return True
    event.__dict__["_delivery_failed"] = True
    log.info('webhook "%s" %s %s', event.type, event.id, reason)
    return False


def _pending_webhooks(event) -> int:
    """Endpoints the event has not reached yet: before its sender ran, every endpoint it is meant for."""
    pending = event.__dict__.get("_pending_webhooks")
    if pending is None:
        from localstripe import webhooks

        pending = sum(1 for hook in webhooks._webhooks.values() if hook.events is None or event.type in hook.events)
    return pending


def delivery_succeeded(event) -> bool:
    """Stripe's delivery_success: every endpoint got it; false also while a delivery is still pending."""
    return not event.__dict__.get("_delivery_failed", False) and _pending_webhooks(event) == 0


def record_webhook_deliveries() -> None:
    """Send localstripe's webhooks through `_send_webhook` (which records each event's delivery outcome),
    expose Stripe's `pending_webhooks` on events, and announce refunds with `charge.refunded` as Stripe does
    (the charge, with its cumulative amount_refunded)."""
    from localstripe import resources, webhooks

    if getattr(webhooks._send_webhook, "_records_deliveries", False):
        return
    _send_webhook._records_deliveries = True
    # localstripe's schedule_webhook looks `_send_webhook` up in its module at each call.
    webhooks._send_webhook = _send_webhook
    resources.Event.pending_webhooks = property(_pending_webhooks)

    upstream_init = resources.Refund.__init__

    def __init__(self, *args, **kwargs):
        upstream_init(self, *args, **kwargs)  # stored (and counted in the charge's amount_refunded) by now
        webhooks.schedule_webhook(resources.Event("charge.refunded", resources.Charge._api_retrieve(self.charge)))

    resources.Refund.__init__ = __init__


def _created_filters(created) -> list:
    """Stripe's `created` list filter (gt, gte, lt, lte: epoch seconds) as predicates; UserError 400 otherwise."""
    from localstripe import resources
    from localstripe.errors import UserError

    if created is None:
        return []
    if not isinstance(created, dict):
        created = {"eq": created}
    filters = []
    compare = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
               "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b}
    for key, value in created.items():
        bound = resources.try_convert_to_int(value)
        if key not in compare or type(bound) is not int:
            raise UserError(400, f"Bad created filter {key}={value!r}: use gt, gte, lt, lte with epoch seconds")
        filters.append(lambda obj, op=compare[key], bound=bound: op(obj.created, bound))
    return filters


def list_as_stripe_does() -> None:
    """`GET /v1/events?delivery_success=true|false` (false: failed or still pending, as on Stripe) and
    `GET /v1/payment_intents?created[gte]=…&created[lte]=…` (localstripe answers 400 to both); pagination
    (limit, starting_after) stays localstripe's, over the filtered list."""
    from localstripe import resources
    from localstripe.errors import UserError

    event_list = resources.Event._api_list_all
    if getattr(event_list, "_filters_deliveries", False):
        return

    def events(cls, url, delivery_success=None, **kwargs):
        wanted = resources.try_convert_to_bool(delivery_success)
        if delivery_success is not None and type(wanted) is not bool:
            raise UserError(400, "delivery_success must be true or false")
        listed = event_list(url, **kwargs)
        if wanted is not None:
            listed._list = [event for event in listed._list if delivery_succeeded(event) is wanted]
        return listed

    events._filters_deliveries = True
    resources.Event._api_list_all = classmethod(events)

    intent_list = resources.PaymentIntent._api_list_all

    def payment_intents(cls, url, created=None, **kwargs):
        filters = _created_filters(created)
        listed = intent_list(url, **kwargs)
        listed._list = [intent for intent in listed._list if all(keep(intent) for keep in filters)]
        return listed

    resources.PaymentIntent._api_list_all = classmethod(payment_intents)


# ------------------------------------------------------------------ webhook chaos (fault injection)
# Stripe delivers webhooks at least once and in no particular order. With chaos on, every event's
# webhook is sent `duplicate` times and the deliveries that become due within `shuffle_window_s` are held
# and sent together in a shuffled order (one after another, so they arrive in that order; in a window of two
# or more events at least one arrives before an event due earlier), e.g. a charge.refunded before the
# payment_intent.succeeded of the same PaymentIntent. Each delivery is signed on its own. Off by default;
# the chaos runner and tests switch it on:
#     POST   /_localdev/webhook-chaos {"duplicate": 2, "shuffle_window_s": 3}   (resets the counts)
#     GET    /_localdev/webhook-chaos → {"on", "duplicate", "shuffle_window_s", "counts": {…}}
#     DELETE /_localdev/webhook-chaos → off (deliveries already held are still sent), the final counts
WEBHOOK_CHAOS_PATH = "/_localdev/webhook-chaos"
MAX_DUPLICATE = 10
MAX_SHUFFLE_WINDOW_SECONDS = 60.0
_CHAOS = {"duplicate": 1, "shuffle_window_s": 0.0}
_CHAOS_COUNT_NAMES = ("events", "deliveries", "duplicates", "out_of_order", "failed", "held")
_CHAOS_COUNTS = dict.fromkeys(_CHAOS_COUNT_NAMES, 0)
_CHAOS_BATCH: list[tuple[int, object, str, bytes]] = []  # (intake number, event, endpoint name, payload)
_CHAOS_UNSENT: set[int] = set()  # intake numbers of events none of whose deliveries has been sent yet
_CHAOS_INTAKE = {"last": 0}


def _chaos_on() -> bool:
    return _CHAOS["duplicate"] > 1 or _CHAOS["shuffle_window_s"] > 0


def configure_webhook_chaos(duplicate: int = 1, shuffle_window_s: float = 0.0, reset_counts: bool = True) -> dict:
    """Set webhook chaos in this process (duplicate 1 and window 0 is off), resetting its counts unless told not to."""
    if isinstance(duplicate, bool) or not isinstance(duplicate, int) or not 1 <= duplicate <= MAX_DUPLICATE:
        raise ValueError(f"duplicate must be an integer from 1 to {MAX_DUPLICATE}, got {duplicate!r}")
    if isinstance(shuffle_window_s, bool) or not isinstance(shuffle_window_s, (int, float)) \
            or not 0 <= shuffle_window_s <= MAX_SHUFFLE_WINDOW_SECONDS:
        raise ValueError(f"shuffle_window_s must be a number of seconds from 0 to {MAX_SHUFFLE_WINDOW_SECONDS:g}, "
                         f"got {shuffle_window_s!r}")
    _CHAOS.update(duplicate=duplicate, shuffle_window_s=float(shuffle_window_s))
    if reset_counts:
        _CHAOS_COUNTS.update(dict.fromkeys(_CHAOS_COUNT_NAMES, 0), held=len(_CHAOS_BATCH))
    return webhook_chaos_status()


def webhook_chaos_status() -> dict:
    return {"on": _chaos_on(), **_CHAOS, "counts": dict(_CHAOS_COUNTS)}


def _chaos_take(event, targets: list[str], payload: bytes) -> None:
    """Hold `duplicate` deliveries of the event per endpoint until the end of the current window."""
    import asyncio

    _CHAOS_COUNTS["events"] += 1
    copies = [name for name in targets for _ in range(_CHAOS["duplicate"])]
    event.__dict__["_deliveries_left"] = len(copies)
    if not copies:
        event.__dict__["_delivery_done"] = True
        return
    _CHAOS_INTAKE["last"] += 1
    intake = _CHAOS_INTAKE["last"]
    _CHAOS_UNSENT.add(intake)
    if not _CHAOS_BATCH:  # the first delivery of a new window: its flush is scheduled now
        asyncio.ensure_future(_chaos_flush(_CHAOS["shuffle_window_s"]))
    _CHAOS_BATCH.extend((intake, event, name, payload) for name in copies)
    _CHAOS_COUNTS["held"] = len(_CHAOS_BATCH)


def shuffled(items: list, key=lambda item: item, rng=None) -> list:
    """`items` in a random order in which, when they belong to two or more events (`key`), some event is
    delivered for the first time before an event that was due earlier (a window whose events all happened
    to keep their order would test nothing). Keys are the events' intake numbers: ascending = due order."""
    import random

    order = list(items)
    (rng or random).shuffle(order)
    firsts = list(dict.fromkeys(key(item) for item in order))
    if len(firsts) > 1 and firsts == sorted(firsts):
        latest = next(i for i, item in enumerate(order) if key(item) == firsts[-1])
        order.insert(0, order.pop(latest))
    return order


async def _chaos_flush(window: float) -> None:
    import asyncio

    await asyncio.sleep(window)
    batch = shuffled(_CHAOS_BATCH[:], key=lambda delivery: delivery[0])
    _CHAOS_BATCH.clear()
    _CHAOS_COUNTS["held"] = 0
    for intake, event, name, payload in batch:
        if intake in _CHAOS_UNSENT:
            # Delivered before an event that was due earlier and has not been delivered yet.
            if min(_CHAOS_UNSENT) < intake:
                _CHAOS_COUNTS["out_of_order"] += 1
            _CHAOS_UNSENT.discard(intake)
        sent = event.__dict__.setdefault("_chaos_sent", set())
        if name in sent:
            _CHAOS_COUNTS["duplicates"] += 1
        sent.add(name)
        _CHAOS_COUNTS["deliveries"] += 1
        if not await _deliver(event, name, payload):
            _CHAOS_COUNTS["failed"] += 1
        event.__dict__["_deliveries_left"] -= 1
        if event.__dict__["_deliveries_left"] <= 0:
            event.__dict__["_delivery_done"] = True


async def _webhook_chaos_route(request):
    from aiohttp import web

    if request.method == "GET":
        return web.json_response(webhook_chaos_status())
    if request.method == "DELETE":
        return web.json_response(configure_webhook_chaos(reset_counts=False))
    if request.method != "POST":
        return web.json_response({"error": "method_not_allowed", "message": "use GET, POST or DELETE"}, status=405)
    try:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return web.json_response(configure_webhook_chaos(body.get("duplicate", 1), body.get("shuffle_window_s", 0)))
    except ValueError as exc:
        return web.json_response({"error": "invalid_request", "message": str(exc)}, status=400)


def _chaos_request(stripe_api_base: str, method: str, body: dict | None = None, timeout: float = 5) -> dict:
    request = urllib.request.Request(f"{stripe_api_base.rstrip('/')}{WEBHOOK_CHAOS_PATH}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def set_webhook_chaos(stripe_api_base: str, duplicate: int = 2, shuffle_window_s: float = 3.0) -> dict:
    """Switch webhook chaos on for a running launcher (counts reset); returns its status."""
    return _chaos_request(stripe_api_base, "POST", {"duplicate": duplicate, "shuffle_window_s": shuffle_window_s})


def webhook_chaos(stripe_api_base: str) -> dict:
    """A running launcher's webhook chaos setting and counts."""
    return _chaos_request(stripe_api_base, "GET")


def clear_webhook_chaos(stripe_api_base: str) -> dict:
    """Switch webhook chaos off (held deliveries are still sent); returns the counts so far."""
    return _chaos_request(stripe_api_base, "DELETE")


# ------------------------------------------------------------------ state across a restart
# A stopped and restarted launcher behaves like Stripe back from an outage, not like a new Stripe account:
# started with --state-file it saves everything it holds there when it stops (SIGTERM/SIGINT, after the
# requests in flight are answered), and with --restore it starts from that file and deletes it (a later
# crash cannot bring back this older state). Kept: every object (PaymentIntents, charges, refunds,
# events…), the registered webhook endpoints with their secrets, the idempotency keys' saved responses (a
# parked payment's retried create must get the same PaymentIntent back), the webhook chaos setting; the
# events whose delivery had not finished are sent again after the start, to the endpoints they had not
# reached (Stripe delivers what it could not send once it is back). Transient switches (outage, rate limit)
# are not kept. The file holds the local test API key in the idempotency scopes: it is written 0600.
STATE_FORMAT = 1
STOP_GRACE_SECONDS = 5.0  # how long a stopping localstripe lets requests in flight finish before it saves
_RESTORED = {"objects": 0, "redelivering": 0}


def save_state(path) -> int:
    """Write this process's Stripe state to `path` (atomically); returns the number of objects saved."""
    import os
    import pickle
    from pathlib import Path

    from localstripe import resources, webhooks

    path = Path(path)
    state = {"format": STATE_FORMAT, "store": dict(resources.store), "webhooks": dict(webhooks._webhooks),
             "idempotent_responses": dict(_IDEMPOTENT_RESPONSES), "chaos": dict(_CHAOS)}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return len(state["store"])


def load_state(path) -> list:
    """Replace this process's Stripe state with the one saved at `path`; returns the events whose webhook
    delivery had not finished (to be sent again). Raises ValueError on a file that is not such a state."""
    import pickle
    from pathlib import Path

    disable_disk_persistence()  # unpickling the store sets its items: never through localstripe's dump
    from localstripe import resources, webhooks

    try:
        with open(Path(path), "rb") as f:
            state = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(f"{path} is not a saved Stripe state ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a saved Stripe state of format {STATE_FORMAT}")
    resources.store.clear()
    dict.update(resources.store, state["store"])
    webhooks._webhooks.clear()
    webhooks._webhooks.update(state["webhooks"])
    _IDEMPOTENT_RESPONSES.clear()
    _IDEMPOTENT_RESPONSES.update(state["idempotent_responses"])
    _CHAOS.update(state["chaos"])
    undelivered = [obj for obj in resources.store.values()
                   if isinstance(obj, resources.Event) and not obj.__dict__.get("_delivery_done", False)]
    _RESTORED.update(objects=len(state["store"]), redelivering=len(undelivered))
    return undelivered


def _keep_state(app, state_file, restore: bool) -> None:
    """Restore from `state_file` now (when asked and it exists) and save to it when the server stops."""
    from pathlib import Path

    path = Path(state_file)
    undelivered = []
    if restore and path.exists():
        undelivered = load_state(path)
        path.unlink()
        print(f"restored {_RESTORED['objects']} Stripe objects from {path}; "
              f"sending {len(undelivered)} undelivered events again", flush=True)
    elif restore:
        print(f"no saved Stripe state at {path}: starting empty", flush=True)

    async def redeliver(_app):
        from localstripe.webhooks import schedule_webhook

        for event in sorted(undelivered, key=lambda e: e.created):
            schedule_webhook(event)

    async def save(_app):
        saved = save_state(path)
        print(f"saved {saved} Stripe objects to {path}", flush=True)

    app.on_startup.append(redeliver)
    app.on_cleanup.append(save)
