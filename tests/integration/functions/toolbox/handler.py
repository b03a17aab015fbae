"""Test function: one deployment per behaviour the data plane must reproduce; the event picks the action."""

import importlib.util
import os
import sys
import time

INVOCATIONS = 0  # module level: survives between invocations only in a warm worker


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    started = time.time()
    action = event.get("action")
    if action == "crash":
        os._exit(3)
    if action == "raise":
        raise ValueError("boom from the handler")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "print":
        print(event["text"])
    return {
        "pid": os.getpid(),
        "invocations": INVOCATIONS,
        "started": started,
        "ended": time.time(),
        "environ": dict(os.environ),
        "sys_path": sys.path,
        "importable": {name: importlib.util.find_spec(name) is not None for name in event.get("modules", [])},
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "version": event.get("version_marker", VERSION),
    }


VERSION = "v1"
