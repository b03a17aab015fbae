"""Fraud scoring (issue 5): weighted, explainable rules over per-customer, per-device and per-IP risk profiles.

Pure Python with no AWS call of its own: the profile store and the IP → country lookup are ports the
caller injects (docs/fraud.md lists the interfaces, the profile layout and the read/write budget).

    config = FraudConfig.from_json(document)                      # validated once, at cold start
    result = score_batch(records, store, config, now, ip_countries=lookup)
"""

import importlib
from typing import TYPE_CHECKING, Any

# The names below load their submodule on first use (PEP 562), not when the package is imported: importing
# any submodule runs this file first, and the functions that only read the configuration (fraud_review,
# capture_payment: `paystream.fraud.config`) would otherwise pay for the rules and scoring at cold start.
_SUBMODULE_OF = {
    "FraudConfig": "config", "FraudConfigError": "config",
    "FraudPayment": "inputs", "MalformedRecord": "inputs", "parse_payment": "inputs",
    "RiskProfile": "profiles", "customer_key": "profiles", "device_key": "profiles", "ip_key": "profiles",
    "profile_keys": "profiles", "updated_profile": "profiles",
    "FraudScore": "rules", "InMemoryIpCountries": "rules", "IpCountryLookup": "rules", "PaymentProfiles": "rules",
    "RiskFactor": "rules", "combine": "rules", "score": "rules",
    "ProfileStoreError": "errors", "VersionConflict": "errors",
    "BatchResult": "scoring", "FraudRecord": "scoring", "InMemoryProfileStore": "scoring", "ProfileStore": "scoring",
    "ProfileUpdate": "scoring", "ProfileWrite": "scoring", "RecordOutcome": "scoring", "score_batch": "scoring",
}

if TYPE_CHECKING:  # what type checkers and readers see: the same names, imported eagerly
    from paystream.fraud.config import FraudConfig, FraudConfigError
    from paystream.fraud.errors import ProfileStoreError, VersionConflict
    from paystream.fraud.inputs import FraudPayment, MalformedRecord, parse_payment
    from paystream.fraud.profiles import RiskProfile, customer_key, device_key, ip_key, profile_keys, updated_profile
    from paystream.fraud.rules import (FraudScore, InMemoryIpCountries, IpCountryLookup, PaymentProfiles, RiskFactor,
                                       combine, score)
    from paystream.fraud.scoring import (BatchResult, FraudRecord, InMemoryProfileStore, ProfileStore, ProfileUpdate,
                                         ProfileWrite, RecordOutcome, score_batch)


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE_OF))


__all__ = [
    "BatchResult", "FraudConfig", "FraudConfigError", "FraudPayment", "FraudRecord", "FraudScore",
    "InMemoryIpCountries", "InMemoryProfileStore", "IpCountryLookup", "MalformedRecord", "PaymentProfiles",
    "ProfileStore", "ProfileStoreError", "ProfileUpdate", "ProfileWrite", "RecordOutcome", "RiskFactor",
    "RiskProfile", "VersionConflict", "combine", "customer_key", "device_key", "ip_key", "parse_payment",
    "profile_keys", "score", "score_batch", "updated_profile",
]
