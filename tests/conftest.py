"""Shared fixtures: one real SeaweedFS and one real Prefect server per test session, started lazily.

A test that uses neither fixture starts nothing. The servers run on free loopback ports with
their state in a pytest temp dir, and are stopped when the session ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearance.dev import devservers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the real local servers (SeaweedFS, Prefect)")
    config.addinivalue_line("markers", "faults: fault injection (a proxy in front of the store, killed processes)")
    config.addinivalue_line("markers", "slow: a long fault or scale case (runs in make test; budget it)")


@pytest.fixture(scope="session", autouse=True)
def service_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The clearance service key of this test session (it attests decisions; runs in subprocesses inherit it)."""
    from tasks.signing import write_key_pair

    path = tmp_path_factory.mktemp("service-key") / "clearance-service"
    write_key_pair(path)
    patch = pytest.MonkeyPatch()
    patch.setenv("CLEARANCE_SERVICE_KEY_FILE", str(path))
    _clear_settings_cache()
    try:
        yield path
    finally:
        patch.undo()
        _clear_settings_cache()


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir of this session's local servers (data, logs, credentials)."""
    return tmp_path_factory.mktemp("services")


def _clear_settings_cache() -> None:
    from clearance.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def s3_service(services_dir: Path) -> Iterator[devservers.S3Service]:
    """A SeaweedFS for the session; ``CLEARANCE_S3_*`` and ``CLEARANCE_BUCKET`` point at it."""
    service = devservers.start_s3(services_dir)
    patch = pytest.MonkeyPatch()
    try:
        for name, value in {
            "CLEARANCE_S3_ENDPOINT_URL": service.endpoint_url,
            "CLEARANCE_S3_REGION": service.region,
            "CLEARANCE_S3_ACCESS_KEY_ID": service.access_key_id,
            "CLEARANCE_S3_SECRET_ACCESS_KEY": service.secret_access_key,
            "CLEARANCE_BUCKET": service.bucket,
        }.items():
            patch.setenv(name, value)
        _clear_settings_cache()
        yield service
    finally:
        patch.undo()
        _clear_settings_cache()
        devservers.stop(service)


@pytest.fixture(scope="session")
def prefect_service(services_dir: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[devservers.PrefectService]:
    """A Prefect server for the session (SQLite, or PostgreSQL with CLEARANCE_LOCAL_DB=postgres); this process
    and its children talk to it.

    The client side gets its own PREFECT_HOME (profiles, local results) in a temp dir.
    Prefect reads its settings once at import, so they are also set in a settings context.
    """
    service = devservers.start_prefect(services_dir)
    client_home = tmp_path_factory.mktemp("prefect-client")
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_API_URL", service.api_url)
    patch.setenv("CLEARANCE_PREFECT_API_URL", service.api_url)
    patch.setenv("PREFECT_HOME", str(client_home))
    _clear_settings_cache()
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: service.api_url, PREFECT_HOME: str(client_home)}):
            yield service
    finally:
        patch.undo()
        _clear_settings_cache()
        # A test may have restarted the server (devservers.restart_prefect): stop whatever
        # now listens under this PREFECT_HOME, recorded by pid in the service it returned.
        devservers.stop(service)
        devservers.stop_started("prefect")
        if service.database == "postgresql":  # CLEARANCE_LOCAL_DB=postgres: the session's own cluster
            from clearance.dev import postgres

            postgres.down(services_dir)


@pytest.fixture
def store(s3_service: devservers.S3Service, request: pytest.FixtureRequest):
    """An ObjectStore on the session's SeaweedFS, confined to a key prefix unique to this test."""
    from clearance.settings import Settings
    from tasks.object_store import ObjectStore

    prefix = f"tests/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}/"
    return ObjectStore.from_settings(Settings(), key_prefix=prefix)


@pytest.fixture
def s3(s3_service, prefect_service):
    """The whole clearance bucket on the session's SeaweedFS, for tests of real promotion runs.

    Flows write outside any test prefix, so these tests isolate themselves by model name instead.
    """
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    return ObjectStore.from_settings(get_settings())
