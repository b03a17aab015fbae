"""The emulator answers an SDK retry of a request it already carried out with the first response (extensions.RetriedRequests)."""

from __future__ import annotations

import threading

from localdev.emulator.extensions import RetriedRequests


class CreateOnce:
    """A WSGI app standing for moto: the first create of a name succeeds, later ones conflict (409)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.created: list[str] = []
        self.gate = gate

    def __call__(self, environ, start_response):
        if self.gate is not None:
            self.gate.wait(5)
        name = environ["wsgi.input"]
        if name in self.created:
            start_response("409 Conflict", [("Content-Type", "text/xml")])
            return [b"<Error>EntityAlreadyExists</Error>"]
        self.created.append(name)
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [f"<Created>{name}</Created>".encode()]


def request(name: str, invocation_id: str | None, attempt: int = 1) -> dict:
    environ = {"wsgi.input": name}
    if invocation_id is not None:
        environ["HTTP_AMZ_SDK_INVOCATION_ID"] = invocation_id
        environ["HTTP_AMZ_SDK_REQUEST"] = f"attempt={attempt}; max=25"
    return environ


def call(retries: RetriedRequests, app, environ) -> tuple[str, bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    body = b"".join(retries(app, environ, start_response))
    return seen["status"], body


def test_a_retry_of_a_create_already_carried_out_gets_the_first_response_and_creates_nothing_more():
    retries, app = RetriedRequests(), CreateOnce()
    first = call(retries, app, request("role-a", "inv-1"))
    again = call(retries, app, request("role-a", "inv-1", attempt=2))
    assert first == again == ("200 OK", b"<Created>role-a</Created>")
    assert app.created == ["role-a"]
    assert retries.replayed == 1


def test_a_new_call_is_carried_out_even_when_it_repeats_an_earlier_one():
    retries, app = RetriedRequests(), CreateOnce()
    call(retries, app, request("role-a", "inv-1"))
    assert call(retries, app, request("role-a", "inv-2"))[0] == "409 Conflict"  # another invocation: AWS's answer
    assert call(retries, app, request("role-a", None))[0] == "409 Conflict"  # no SDK headers: passed through
    assert retries.replayed == 0


def test_a_retry_after_an_error_response_runs_again():
    retries = RetriedRequests()
    outcomes = iter([("503 Service Unavailable", b"<Error>Throttling</Error>"), ("200 OK", b"<Ok/>")])
    calls = []

    def flaky(environ, start_response):
        calls.append(environ["HTTP_AMZ_SDK_REQUEST"])
        status, body = next(outcomes)
        start_response(status, [])
        return [body]

    assert call(retries, flaky, request("x", "inv-1"))[0] == "503 Service Unavailable"
    assert call(retries, flaky, request("x", "inv-1", attempt=2)) == ("200 OK", b"<Ok/>")
    # ... and a third attempt (its response lost in turn) replays the second one's success.
    assert call(retries, flaky, request("x", "inv-1", attempt=3)) == ("200 OK", b"<Ok/>")
    assert len(calls) == 2


def test_a_retry_arriving_while_the_first_attempt_runs_waits_for_its_response():
    gate = threading.Event()
    retries, app = RetriedRequests(), CreateOnce(gate)
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", call(retries, app, request("fn", "inv-1"))))
    first.start()
    while "inv-1" not in retries._served:  # the first attempt is registered before moto runs it
        pass
    second = threading.Thread(target=lambda: results.setdefault("retry", call(retries, app, request("fn", "inv-1", attempt=2))))
    second.start()
    gate.set()
    first.join(5), second.join(5)
    assert results["first"] == results["retry"] == ("200 OK", b"<Created>fn</Created>")
    assert app.created == ["fn"]


def test_kept_responses_stay_within_the_byte_budget_oldest_dropped_first():
    retries, app = RetriedRequests(budget_bytes=1000), CreateOnce()
    for n in range(50):
        call(retries, app, request(f"role-{n}", f"inv-{n}"))
    assert retries._kept_bytes <= 1000
    assert "inv-49" in retries._served and "inv-0" not in retries._served
    assert call(retries, app, request("role-0", "inv-0", attempt=2))[0] == "409 Conflict"  # forgotten: carried out
