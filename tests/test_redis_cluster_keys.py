"""Redis Cluster safety: keys a script or MGET uses together share a hash slot, and each clinic's
quota and each channel's rate-limit buckets carry their own hash tag (spread over the cluster)."""

from __future__ import annotations

from redis.crc import key_slot

from saas.auth.throttle import _login_counters, _totp_counters
from saas.delivery.ratelimit import bucket_key
from saas.quota.counter import _redis_key


def _slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_clinics_quota_keys_share_the_clinics_slot_and_clinics_spread():
    assert {_slot(_redis_key(7, month)) for month in ("2026-11", "2026-12")} == {_slot("{clinic:7}")}
    assert len({_slot(_redis_key(clinic_id, "2026-12")) for clinic_id in range(50)}) > 40


def test_a_channels_rate_limit_buckets_share_one_slot():
    slots = {_slot(bucket_key("1999000001", endpoint)) for endpoint in ("multicast", "push", "reply", "broadcast")}
    assert slots == {_slot("{ch:1999000001}")}
    assert _slot(bucket_key("1999000001", "push")) != _slot(bucket_key("1999000002", "push"))


def test_the_throttle_keys_read_together_share_a_slot():
    login = _login_counters("Staff@Clinic.example", "203.0.113.9", known_address=False)
    assert len({_slot(counter.key) for counter in login}) == 1
    assert len({_slot(counter.key) for counter in _totp_counters(7, "203.0.113.9")}) == 1


def test_the_quota_script_keys_share_the_clinics_slot():
    from saas.quota.counter import _grants_key

    assert _slot(_grants_key(7, "2026-12")) == _slot(_redis_key(7, "2026-12"))
