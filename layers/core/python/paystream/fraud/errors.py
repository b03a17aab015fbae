"""The profile store's errors, apart from the scoring code: the configuration source
(paystream.adapters.fraud_profiles.FraudConfigSource) raises them in functions that never score
(fraud_review, capture_payment), which then need not import the rules and scoring modules at cold start."""


class ProfileStoreError(Exception):
    """The profile store failed (throttling, network, …): retry later."""


class VersionConflict(ProfileStoreError):
    """A profile's stored version is not the one the write expected: someone else wrote it meanwhile."""
