"""The typed configuration: defaults, file, environment, overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.config import ConfigError, ServiceName, load_settings


def test_embedded_defaults_need_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    settings = load_settings()
    assert settings.topology == "embedded"
    assert settings.trading_mode == "paper"
    assert settings.server.port == 50051
    assert settings.services == tuple(ServiceName)


def test_precedence_overrides_env_file_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[server]\nport = 6000\nhost = "0.0.0.0"\n[log]\nlevel = "DEBUG"\n')
    monkeypatch.setenv("NEXUS_SERVER__PORT", "7000")
    settings = load_settings(path)
    assert settings.server.port == 7000  # environment beats the file
    assert settings.server.host == "0.0.0.0"  # the file's other keys stay
    assert settings.log.level == "DEBUG"
    settings = load_settings(path, {"server": {"port": 8000}})
    assert settings.server.port == 8000  # overrides beat the environment
    assert settings.server.host == "0.0.0.0"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('services = ["hub", "risk"]\n')
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    assert load_settings().services == (ServiceName.HUB, ServiceName.RISK)


def test_services_from_comma_list() -> None:
    settings = load_settings(overrides={"services": "hub, marketdata"})
    assert settings.services == (ServiceName.HUB, ServiceName.MARKETDATA)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 70000\n", "less than or equal to 65535"),
        ("[server]\nprot = 1\n", "Extra inputs are not permitted"),
        ('services = ["hub", "nope"]\n', "Input should be 'hub'"),
        ("services = []\n", "at least one service"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_files_fail_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_bad_environment_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError, match="NEXUS_"):
        load_settings()


def test_external_venue_with_tls_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(
        "[[execution.venues]]\n"
        'name = "BROKER"\n'
        "fee_bps = 2\n"
        'connect_to = "fix.broker.example:9880"\n'
        "[execution.venues.tls]\n"
        'ca = "certs/ca.pem"\n'
        'server_name = "fix.broker.example"\n'
        'cert = "certs/nexus.pem"\n'
        'key = "certs/nexus.key"\n'
        "[[execution.venues]]\n"
        'name = "PAPER"\n'
    )
    broker, paper = load_settings(path).execution.venues
    assert broker.engine_entry() == {
        "name": "BROKER",
        "fee_bps": 2,
        "latency_ms": 0.0,
        "connect_to": ("fix.broker.example", 9880),
        "tls": {
            "ca": Path("certs/ca.pem"),
            "server_name": "fix.broker.example",
            "cert": Path("certs/nexus.pem"),
            "key": Path("certs/nexus.key"),
        },
    }
    assert paper.engine_entry() == ("PAPER", 0, 0.0)


@pytest.mark.parametrize(
    ("venue", "message"),
    [
        ({"name": "A", "tls": {"ca": "ca.pem", "server_name": "a"}}, "tls is for an external"),
        (
            {
                "name": "A",
                "connect_to": "a:1",
                "tls": {"ca": "ca.pem", "server_name": "a", "cert": "c.pem"},
            },
            "tls.cert and tls.key go together",
        ),
        ({"name": "A", "connect_to": "no-port"}, "connect_to"),
        ({"name": "A", "connect_to": "a:1", "tls": {"ca": "ca.pem"}}, "server_name"),
    ],
)
def test_bad_venue_tls_is_refused(venue: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, {"execution": {"venues": [venue]}})
