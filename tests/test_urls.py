"""URL parsing, driver choice and password masking (pure)."""

from __future__ import annotations

import pytest

from bbperf.errors import ConfigError
from bbperf.urls import is_unix_socket, mask_text, mask_url, parse_url


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg2"),
        ("postgres://u:p@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
        ("sqlite://", "sqlite"),
    ],
)
def test_parse_url_driver(url: str, driver: str) -> None:
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize("bad", ["not a url", "mysql://u@h/db", "://nothing"])
def test_parse_url_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(bad)


def test_mask_url_hides_password_everywhere() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/bb") == "postgresql://app:***@db:5432/bb"
    masked = mask_url("postgresql://app@db/bb?password=s3cret&sslmode=require")
    assert "s3cret" not in masked


def test_mask_url_leaves_passwordless_url_alone() -> None:
    assert (
        mask_url("postgresql://postgres@/bbperf?host=/tmp/x")
        == "postgresql://postgres@/bbperf?host=%2Ftmp%2Fx"
    )


def test_mask_text_in_free_text() -> None:
    text = 'could not connect "postgresql://a:hunter2@h/db" password=hunter2 end'
    assert "hunter2" not in mask_text(text)


@pytest.mark.parametrize(
    ("url", "socket"),
    [
        ("postgresql://u@/db?host=/tmp/s", True),
        ("postgresql://u@/db", True),
        ("postgresql://u@127.0.0.1/db", False),
        ("postgresql://u@/db?host=db.internal", False),
    ],
)
def test_unix_socket_detection(url: str, socket: bool) -> None:
    assert is_unix_socket(parse_url(url)) is socket


@pytest.mark.parametrize(
    ("url", "described"),
    [
        (
            "postgresql://app:s3cret@db.example.com:6432/bb?sslmode=require",
            "db.example.com:6432/bb",
        ),
        ("postgresql://postgres@/bbperf?host=/tmp/x", "unix-socket/bbperf"),
        ("sqlite://", "sqlite/:memory:"),
    ],
)
def test_describe_target_holds_no_credentials(url: str, described: str) -> None:
    from bbperf.urls import describe_target

    assert describe_target(url) == described
