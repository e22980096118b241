"""Fixtures for the fingerprint tests; the derandomized hypothesis profile they use."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Registered here (tests/conftest.py belongs to the lead) and applied by the fingerprint property
# tests themselves, so loading it does not change other packages' hypothesis settings.
settings.register_profile(
    "fingerprint-ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
