"""Least privilege, measured: every AWS action a function's role grants is one its code was seen to call.

Runs after every other e2e test except the ones that restart the emulator (marker `audits_requests`): by
then the suite has driven every function through its paths — payments, declines, outages and parking,
retries, webhooks of every kind, refunds, disputes, fraud review and capture. The data plane names each
function in its requests' User-Agent, and the emulator counts each function's requests by operation
(`/_localdev/requests?by=app`). The roles are read back from the emulator's IAM, as Terraform made them.

Not counted as unused (used by AWS on the function's behalf, never by its code):
- the lambda_function module's own statements: logs (`WriteOwnLogs`), X-Ray (`WriteTraces`), reading the
  event source of a mapping (`ReadEventSource…`) and sending to its on-failure destination (`SendFailures…`);
- `kms:*` on the platform key: DynamoDB, SQS, SNS, Kinesis and Secrets Manager use it server-side for the
  caller when they encrypt and decrypt.
Also checked: no statement of the function's own grants `*` as resource.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.audits_requests]

SERVICE_MANAGED_SIDS = ("WriteOwnLogs", "WriteTraces", "ReadEventSource", "SendFailures")
# One TransactWriteItems is authorised per item: Put, Update, Delete or ConditionCheck. The count does not
# say which kinds of item a transaction held, so a transaction stands for all four (the audit is coarser here).
TRANSACTION_ITEM_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                            "dynamodb:ConditionCheckItem"}
# Paths the e2e suite cannot drive for this function, with why the grant is still needed. Each entry is
# a decision to revisit, not a way to silence the audit: keep it short.
_BREAKER_ALERT = ("breaker transition alert on ops-alerts, sent by whichever Stripe caller opens or closes the "
                  "shared breaker (the suite's outage drill has resume_payments do it)")
NOT_EXERCISED: dict[str, dict[str, str]] = {
    "initiate_payment": {"sns:Publish": _BREAKER_ALERT},
    "refund_payment": {"sns:Publish": _BREAKER_ALERT},
    "payment_retry": {"sns:Publish": _BREAKER_ALERT},
    # A batch reads its projections with BatchGetItem; GetItem only re-reads one after a concurrent append
    # (unit-tested: tests/unit/test_process_payment_batch.py).
    "process_payment": {"dynamodb:GetItem": "re-read after a concurrent append"},
}


def iam_actions(operation: str) -> set[str]:
    """The IAM actions one observed `service.Operation` stands for."""
    service, name = operation.split(".", 1)
    if operation == "dynamodb.TransactWriteItems":
        return TRANSACTION_ITEM_ACTIONS
    if operation == "dynamodb.TransactGetItems":
        return {"dynamodb:GetItem"}
    if operation == "sns.PublishBatch":  # authorised by sns:Publish (the notifier)
        return {"sns:Publish"}
    return {f"{service}:{name}"}


def granted_statements(iam, role_name: str) -> list[dict]:
    statements = []
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        found = document["Statement"]
        statements += found if isinstance(found, list) else [found]
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_the_mapping_from_operations_to_actions():
    assert iam_actions("sqs.SendMessage") == {"sqs:SendMessage"}
    assert iam_actions("dynamodb.TransactWriteItems") == TRANSACTION_ITEM_ACTIONS
    assert iam_actions("secretsmanager.GetSecretValue") == {"secretsmanager:GetSecretValue"}
    assert iam_actions("sns.PublishBatch") == {"sns:Publish"}


def granted_versus_used_table(rows: dict[str, tuple[int, int, int]]) -> str:
    """Markdown: per function, the actions its own statements grant, how many its code was seen to call,
    and how many are granted for a path the suite cannot drive (NOT_EXERCISED)."""
    lines = ["| function | actions granted | used by its code | granted, not exercised here |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {granted} | {used} | {waived} |" for name, (granted, used, waived) in sorted(rows.items())]
    return "\n".join(lines) + "\n"


def test_every_function_uses_every_action_its_role_grants(outputs, aws_client, tmp_path_factory):
    with urllib.request.urlopen(f"{outputs['aws_endpoint_url']}/_localdev/requests?by=app", timeout=10) as response:
        by_function = json.loads(response.read())["requests"]
    lambda_client, iam = aws_client("lambda"), aws_client("iam")
    unused: dict[str, list[str]] = {}
    wildcard: dict[str, list[str]] = {}
    counts: dict[str, tuple[int, int, int]] = {}
    for key, function_name in sorted(outputs["function_names"].items()):
        used = set().union(*[iam_actions(op) for op in by_function.get(function_name, {})] or [set()])
        role_name = lambda_client.get_function(FunctionName=function_name)["Configuration"]["Role"].rsplit("/", 1)[-1]
        granted: set[str] = set()
        for statement in granted_statements(iam, role_name):
            if statement.get("Effect") != "Allow" or str(statement.get("Sid", "")).startswith(SERVICE_MANAGED_SIDS):
                continue
            if "*" in as_list(statement.get("Resource")):
                wildcard.setdefault(key, []).append(statement.get("Sid", "?"))
            for action in as_list(statement["Action"]):
                if action.startswith("kms:"):
                    continue
                granted.add(action)
                if action in used or action in NOT_EXERCISED.get(key, {}):
                    continue
                unused.setdefault(key, []).append(f"{statement.get('Sid', '?')}: {action}")
        counts[key] = (len(granted), len(granted & used), len(granted & NOT_EXERCISED.get(key, {}).keys() - used))
    # The figure for the record (issue 6): written next to the run's other artefacts, whatever the outcome.
    report = tmp_path_factory.getbasetemp() / "iam-granted-versus-used.md"
    report.write_text(granted_versus_used_table(counts))
    print(f"IAM actions granted versus used: {report}")
    assert wildcard == {}, "statements granting Resource '*'"
    assert unused == {}, f"granted but never called (calls seen: {json.dumps(by_function, sort_keys=True)})"
