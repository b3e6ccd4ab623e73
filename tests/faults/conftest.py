"""Fault-injection fixtures: the session's real SeaweedFS behind a :class:`FaultProxy` per test.

``proxy`` is the running proxy; ``proxied_store`` an ObjectStore that talks through it; and
``proxied_env`` the environment a subprocess (a `clearance` CLI or a flow run) needs to reach the
store only through the proxy. The Prefect server is the session's (tests/conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fakes.fault_proxy import FaultProxy


@pytest.fixture()
def proxy(s3_service) -> Iterator[FaultProxy]:
    running = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key,
                         s3_service.region).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def proxied_env(proxy, monkeypatch) -> dict[str, str]:
    """CLEARANCE_S3_ENDPOINT_URL → the proxy, in this process (settings cache cleared) and for children."""
    from clearance.settings import get_settings

    monkeypatch.setenv("CLEARANCE_S3_ENDPOINT_URL", proxy.url)
    get_settings.cache_clear()
    yield {"CLEARANCE_S3_ENDPOINT_URL": proxy.url}
    get_settings.cache_clear()


@pytest.fixture()
def proxied_store(proxy, s3_service):
    """An ObjectStore through the proxy, in its own key namespace."""
    from clearance.settings import Settings
    from tasks.object_store import ObjectStore

    settings = Settings(s3_endpoint_url=proxy.url, s3_access_key_id=s3_service.access_key_id,
                        s3_secret_access_key=s3_service.secret_access_key, s3_region=s3_service.region,
                        bucket=s3_service.bucket)
    return ObjectStore.from_settings(settings, key_prefix=f"faults-{time.time_ns()}/")
