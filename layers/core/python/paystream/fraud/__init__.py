"""Fraud scoring (issue 5): weighted, explainable rules over per-customer, per-device and per-IP risk profiles.

Pure Python with no AWS call of its own: the profile store and the IP → country lookup are ports the
caller injects (docs/fraud.md lists the interfaces, the profile layout and the read/write budget).

    config = FraudConfig.from_json(document)                      # validated once, at cold start
    result = score_batch(records, store, config, now, ip_countries=lookup)
"""

from paystream.fraud.config import FraudConfig, FraudConfigError
from paystream.fraud.inputs import FraudPayment, MalformedRecord, parse_payment
from paystream.fraud.profiles import (
    RiskProfile,
    customer_key,
    device_key,
    ip_key,
    profile_keys,
    updated_profile,
)
from paystream.fraud.rules import (
    FraudScore,
    InMemoryIpCountries,
    IpCountryLookup,
    PaymentProfiles,
    RiskFactor,
    combine,
    score,
)
from paystream.fraud.scoring import (
    BatchResult,
    FraudRecord,
    InMemoryProfileStore,
    ProfileStore,
    ProfileStoreError,
    ProfileUpdate,
    ProfileWrite,
    RecordOutcome,
    VersionConflict,
    score_batch,
)

__all__ = [
    "BatchResult", "FraudConfig", "FraudConfigError", "FraudPayment", "FraudRecord", "FraudScore",
    "InMemoryIpCountries", "InMemoryProfileStore", "IpCountryLookup", "MalformedRecord", "PaymentProfiles",
    "ProfileStore", "ProfileStoreError", "ProfileUpdate", "ProfileWrite", "RecordOutcome", "RiskFactor",
    "RiskProfile", "VersionConflict", "combine", "customer_key", "device_key", "ip_key", "parse_payment",
    "profile_keys", "score", "score_batch", "updated_profile",
]
