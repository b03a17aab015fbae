"""Test function behind the local REST API: echoes the proxy event or misbehaves on request."""

import base64
import hashlib
import hmac
import json
import os
import time


def handler(event, context):
    path = event["path"]
    if path.endswith("/fail"):
        raise RuntimeError("function error")
    if path.endswith("/slow"):
        time.sleep(10)
    if path.endswith("/invalid"):
        return {"body": "no status code"}
    if path.endswith("/binary"):
        raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(raw[::-1]).decode(),
            "isBase64Encoded": True,
        }
    if path.endswith("/verify"):
        # What a webhook handler does: HMAC over the raw body as received.
        expected = hmac.new(os.environ["SIGNING_SECRET"].encode(), event["body"].encode("utf-8"), hashlib.sha256)
        ok = hmac.compare_digest(expected.hexdigest(), event["headers"].get("X-Signature", ""))
        return {"statusCode": 200 if ok else 400, "body": json.dumps({"verified": ok})}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Echo": "yes"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(event),
    }
