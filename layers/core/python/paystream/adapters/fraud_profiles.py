"""The fraud scorer's `ProfileStore` port over DynamoDB (low-level client), and its configuration source.

Reads: `get_many` is ONE BatchGetItem for up to 100 keys spanning two tables — risk profiles
(`CUSTOMER#…`, `DEVICE#…`, `IP#…`, hash key `pk` in the fraud-profiles table) and payment projections
(`TXN#<transaction_id>`, the related keys the scorer asks for: `pk` + `sk = PROJECTION` in the transactions
table). Keys DynamoDB leaves unprocessed (throttling, the 16 MB answer limit) are asked for again with
capped exponential backoff; still unprocessed after the attempts → ProfileStoreError (the batch is retried).
Reads are strongly consistent: every write is conditional on what was read, and a stale read would only
buy a conflict and a second round trip.

Writes: `put_many` is ONE TransactWriteItems for several records' writes (the core keeps it within 100
actions; `put` is the same for one record): each profile once (`merged_updates`: its final state) on
condition that its stored `version` is the one read (absent for a new profile), plus — for each scored
payment whose projection was read and that `states.decide` says has no score yet — the `fraud.scored` event
and the new projection, with exactly the conditions of `EventStore.append` (`store.append_puts`). A second
record of the same payment in the transaction is decided on the projection the first one's append leaves
(the first score wins, as it would on a re-read). So a score is never written without the profiles it
counted, nor the profiles without the score. A cancellation by a condition or a concurrent transaction is a
VersionConflict: the core re-reads the profiles and projections and scores the records again, one by one
(a redelivered record is then recognised from the customer's remembered results).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from paystream.adapters.dynamodb_store import deserialize, serialize
# Only the configuration and the errors at import: fraud_review and capture_payment read the configuration
# through FraudConfigSource and never score, so the profile and scoring modules are loaded where a profile
# is first read (the fraud scorer has imported them already).
from paystream.fraud.config import FraudConfig, FraudConfigError
from paystream.fraud.errors import ProfileStoreError, VersionConflict
from paystream.models import Projection
from paystream.states import FRAUD_SCORED, apply, decide, next_event
from paystream.store import PROJECTION_SK, ConditionalPut, append_puts

if TYPE_CHECKING:
    from paystream.fraud.scoring import ProfileWrite

TRANSACTION_PREFIX = "TXN#"
FRAUD_SOURCE = "paystream.fraud"
_CONFLICT_REASONS = {"ConditionalCheckFailed", "TransactionConflict"}
# Deterministic fraud.scored event ids: a rescored record (after a conflict) appends under the same id.
_FRAUD_SCORED_NAMESPACE = uuid.UUID("6f1d3c2a-8e55-4c1b-9a57-2f0c5b9e7d41")


def projection_key(transaction_id: str) -> str:
    """The related key that names a payment's projection (what `score_batch(related_keys=…)` asks for)."""
    return f"{TRANSACTION_PREFIX}{transaction_id}"


def fraud_scored_event_id(payment_event_id: str) -> str:
    return str(uuid.uuid5(_FRAUD_SCORED_NAMESPACE, f"{FRAUD_SCORED}:{payment_event_id}"))


class DynamoDBProfileStore:
    def __init__(self, client: Any, profiles_table: str, transactions_table: str, config: FraudConfig, *,
                 max_read_attempts: int = 5, backoff_base_seconds: float = 0.05, backoff_max_seconds: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep):
        self._client = client  # paystream.adapters.wiring.dynamodb_client()
        self._profiles_table = profiles_table
        self._transactions_table = transactions_table
        self.config = config  # RiskProfile.to_item needs it (TTL of device and IP profiles)
        self._max_read_attempts = max_read_attempts
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._sleep = sleep

    # --- reads -------------------------------------------------------------------------------------------

    def _key(self, key: str) -> tuple[str, dict[str, Any]]:
        if key.startswith(TRANSACTION_PREFIX):
            return self._transactions_table, {"pk": {"S": key}, "sk": {"S": PROJECTION_SK}}
        return self._profiles_table, {"pk": {"S": key}}

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Profiles as RiskProfile, projections as their item (plain Python); absent keys are left out."""
        from paystream.fraud.profiles import RiskProfile  # see the imports above: not needed by config readers

        if not keys:
            return {}
        request: dict[str, dict[str, Any]] = {}
        for key in dict.fromkeys(keys):
            table, dynamo_key = self._key(key)
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(dynamo_key)
        found: dict[str, Any] = {}
        for attempt in range(self._max_read_attempts):
            try:
                response = self._client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                raise ProfileStoreError(f"reading fraud profiles failed: {exc}") from exc
            for table, items in response.get("Responses", {}).items():
                for raw in items:
                    item = deserialize(raw)
                    if table == self._transactions_table:
                        found[item["pk"]] = item
                    else:
                        found[item["pk"]] = RiskProfile.from_item(item)
            request = {table: {**part, "ConsistentRead": True}
                       for table, part in (response.get("UnprocessedKeys") or {}).items() if part.get("Keys")}
            if not request:
                return found
            if attempt + 1 < self._max_read_attempts:
                # Full jitter: shards of the same stream throttled together should not retry in step.
                self._sleep(random.uniform(0, min(self._backoff_max, self._backoff_base * 2 ** attempt)))
        left = sum(len(part["Keys"]) for part in request.values())
        raise ProfileStoreError(f"{left} keys still unprocessed after {self._max_read_attempts} BatchGetItem calls")

    # --- writes ------------------------------------------------------------------------------------------

    def scored_event_puts(self, write: ProfileWrite, appended: dict[str, Projection] | None = None
                          ) -> list[ConditionalPut]:
        """The fraud.scored append for this write, or nothing (a decline, no projection, already scored).
        `appended`: the projections earlier writes of the same transaction leave, by related key (updated)."""
        if write.score is None:
            return []
        key = projection_key(write.payment.transaction_id)
        appended = {} if appended is None else appended
        projection = appended.get(key)
        if projection is None:
            item = write.related.get(key)
            if item is None:
                return []  # not a stored payment (e.g. a record put on the stream by hand): profiles only
            projection = Projection.model_validate(item)
        detail = write.score.to_detail()
        if projection.capture_method != "automatic":
            # As payment.created says it: the capture rule (fraud-cleared) matches only risk-gated payments, so
            # the automatically captured ones never wake capture_payment (nor cost it a projection read).
            detail["capture_method"] = projection.capture_method
        if not decide(projection, FRAUD_SCORED, detail).append:
            return []  # the first score wins (states.py)
        if key in appended:  # one transaction cannot write the projection twice: let the records go one by one
            raise ProfileStoreError(f"two appends to {key} in one transaction")
        event = next_event(projection, FRAUD_SCORED, detail, source=FRAUD_SOURCE,
                           event_id=fraud_scored_event_id(write.payment.event_id))
        appended[key] = apply(projection, event)
        return append_puts(projection.last_sequence, [event], appended[key])

    def put(self, write: ProfileWrite) -> None:
        self.put_many([write])

    def put_many(self, writes: Sequence[ProfileWrite]) -> None:
        from paystream.fraud.scoring import merged_updates  # loaded already where anything is written

        what = f"write of {writes[0].payment.event_id}" if len(writes) == 1 else f"write of {len(writes)} records"
        items: list[dict[str, Any]] = []
        for update in merged_updates(writes):
            put: dict[str, Any] = {"TableName": self._profiles_table, "Item": serialize(update.profile.to_item(self.config))}
            if update.expected_version == 0:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "version = :expected_version"
                put["ExpressionAttributeValues"] = {":expected_version": {"N": str(update.expected_version)}}
            items.append({"Put": put})
        appended: dict[str, Projection] = {}
        for write in writes:
            for conditional in self.scored_event_puts(write, appended):
                put = {"TableName": self._transactions_table, "Item": serialize(conditional.item),
                       "ConditionExpression": conditional.condition}
                if conditional.values:
                    put["ExpressionAttributeValues"] = serialize(conditional.values)
                items.append({"Put": put})
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
                if _CONFLICT_REASONS & set(reasons):
                    raise VersionConflict(f"{what} cancelled: {reasons}") from exc
                raise ProfileStoreError(f"{what} cancelled: {reasons}") from exc
            raise ProfileStoreError(f"writing fraud profiles failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ProfileStoreError(f"writing fraud profiles failed: {exc}") from exc


class FraudConfigSource:
    """The FraudConfig JSON from an SSM parameter, through Powertools' parameter cache.

    `load()` at cold start raises FraudConfigError (one message naming every bad field) so a bad document
    stops the function before it scores anything. `current()` afterwards re-reads the parameter at most every
    `max_age` seconds: a changed, valid document takes effect; an invalid one is reported to `on_invalid`
    and the last good configuration stays in force (a typo must not stop fraud scoring). A missing
    parameter or an empty value gives the defaults."""

    def __init__(self, parameter_name: str, *, max_age: int = 300, provider: Any = None,
                 on_invalid: Callable[[str], None] | None = None):
        self._name = parameter_name
        self._max_age = max_age
        self._provider = provider
        self._on_invalid = on_invalid or (lambda message: None)
        self._text: str | None = None
        self._config: FraudConfig | None = None

    def _provider_or_default(self) -> Any:
        if self._provider is None:
            import boto3
            from aws_lambda_powertools.utilities import parameters

            # A client of boto3's default session, which the function's other clients share: SSMProvider's
            # own session would scan botocore's data directory again (the loader caches it per session), a
            # few tens of milliseconds of every cold start of the three functions that read the config.
            self._provider = parameters.SSMProvider(boto3_client=boto3.client("ssm"))
        return self._provider

    def _read(self) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider_or_default().get(self._name, max_age=self._max_age)
        except GetParameterError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return ""
            raise ProfileStoreError(f"reading the fraud configuration parameter {self._name} failed: {exc}") from exc
        return value or ""

    def load(self) -> FraudConfig:
        text = self._read()
        try:
            config = FraudConfig.from_json(text)
        except FraudConfigError as exc:
            raise FraudConfigError(f"SSM parameter {self._name}: {exc}") from None
        self._text, self._config = text, config
        return config

    def current(self) -> FraudConfig:
        if self._config is None:
            return self.load()
        try:
            text = self._read()
        except ProfileStoreError as exc:
            self._on_invalid(f"kept the current fraud configuration: {exc}")
            return self._config
        if text != self._text:
            try:
                self._config = FraudConfig.from_json(text)
            except FraudConfigError as exc:
                self._on_invalid(f"kept the current fraud configuration: SSM parameter {self._name}: {exc}")
            self._text = text  # report a bad document once per change, not once per batch
        return self._config

