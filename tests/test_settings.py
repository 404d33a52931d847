"""Settings from the environment: today's names, `__` nesting, and clear errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from horde_model_reference import HordeModelReferenceSettings, ReplicateMode, SettingsError, load_settings

P = "HORDE_MODEL_REFERENCE_"


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.replicate_mode is ReplicateMode.REPLICA
    assert settings.cache_ttl_seconds == 60.0
    assert settings.redis.url is None and settings.redis.key_prefix == "hmr:v1"
    assert settings.nats.url is None and settings.nats.subject_prefix == "hmr.v1"
    assert settings.image_github_repo.name == "AI-Horde-image-model-reference"
    assert settings.text_github_repo.name == "AI-Horde-text-model-reference"


def test_an_environment_without_settings_gives_the_same_defaults_as_converting_nothing() -> None:
    unrelated = {"PATH": "/usr/bin", "HORDE_MODEL_REFERENCEX": "not ours"}
    assert load_settings(unrelated) == msgspec.convert({}, HordeModelReferenceSettings, strict=False)


def test_todays_names_and_nesting() -> None:
    settings = load_settings(
        {
            P + "REPLICATE_MODE": "PRIMARY",
            P + "CACHE_TTL_SECONDS": "5",
            P + "PRIMARY_API_URL": "https://models.example/api",
            P + "REDIS__URL": "redis://cache:6379/2",
            P + "REDIS__KEY_PREFIX": "fleet",
            P + "GITHUB_SEED_ENABLED": "true",
            P + "OFFLINE": "1",
            P + "IMAGE_GITHUB_REPO__BRANCH": "dev",
            P + "TEXT_GITHUB_REPO__OWNER": "someone",
            P + "NATS__URL": "nats://bus:4222",
            "UNRELATED": "ignored",
        }
    )
    assert settings.replicate_mode is ReplicateMode.PRIMARY
    assert settings.cache_ttl_seconds == 5.0
    assert settings.primary_api_url == "https://models.example/api"
    assert (settings.redis.url, settings.redis.key_prefix) == ("redis://cache:6379/2", "fleet")
    assert settings.github_seed_enabled and settings.offline
    assert settings.image_github_repo.branch == "dev"
    assert settings.image_github_repo.name == "AI-Horde-image-model-reference"
    assert settings.text_github_repo.owner == "someone"
    assert settings.nats.url == "nats://bus:4222"


def test_aiworker_cache_home_sets_the_base_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIWORKER_CACHE_HOME", str(tmp_path))
    assert load_settings({}).resolved_base_path() == tmp_path / "horde_model_reference"
    assert load_settings({P + "BASE_PATH": "/srv/x"}).resolved_base_path() == Path("/srv/x")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CACHE_TTL_SECONDS", "soon", "`float`"),
        ("REPLICATE_MODE", "BOTH", "one of PRIMARY, REPLICA"),
        ("REDIS__SOCKET_TIMEOUT", "x", "`float`"),
        ("OFFLINE", "perhaps", "`bool`"),
        ("REDIS", "x", "`object`"),
        ("PRIMARY_API_TIMEOUT", "0", "`float` > 0.0"),
        ("CACHE_TTL_SECONDS", "-1", "`float` >= 0.0"),
        ("NEGATIVE_CACHE_SECONDS", "-0.5", "`float` >= 0.0"),
        ("PROVIDER_TIMEOUT_SECONDS", "0", "`float` > 0.0"),
        ("REDIS__POOL_SIZE", "0", "`int` >= 1"),
        ("NATS__REQUEST_TIMEOUT", "-3", "`float` > 0.0"),
        ("WRITES__APPLY_LOCK_TIMEOUT", "0", "`float` > 0.0"),
        ("WRITES__MAX_PAYLOAD_BYTES", "0", "`int` >= 1"),
    ],
)
def test_invalid_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({P + variable: value})
    assert info.value.variable == P + variable
    assert info.value.value == value
    assert expected in str(info.value)


def test_settings_built_in_code_are_checked_by_the_manager_naming_the_variable(tmp_path: Path) -> None:
    from horde_model_reference import FileSystemBackend, ModelReferenceManager, check_settings

    bad = HordeModelReferenceSettings(negative_cache_seconds=-1)
    with pytest.raises(SettingsError) as info:
        check_settings(bad)
    assert (info.value.variable, info.value.value) == (P + "NEGATIVE_CACHE_SECONDS", -1)
    assert check_settings(HordeModelReferenceSettings()) == HordeModelReferenceSettings()
    ModelReferenceManager.reset()
    try:
        with pytest.raises(SettingsError, match="NEGATIVE_CACHE_SECONDS"):
            ModelReferenceManager(backend=FileSystemBackend(tmp_path), settings=bad)
        assert not ModelReferenceManager.has_instance()
    finally:
        ModelReferenceManager.reset()


def test_settings_built_in_code_may_hold_a_path(tmp_path: Path) -> None:
    from horde_model_reference import check_settings

    settings = HordeModelReferenceSettings(base_path=tmp_path)  # type: ignore[arg-type]
    assert check_settings(settings).resolved_base_path() == tmp_path
