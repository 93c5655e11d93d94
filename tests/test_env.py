"""The environment readers: a blank variable means its default; a bad value stops the start."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from crow import env


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_variable_is_unset(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    # DATABASE_URL= in a .env file must mean the embedded database, not a URL that fails to parse.
    monkeypatch.setenv("CROW_TEST_VALUE", blank)
    assert env.string("CROW_TEST_VALUE", "sqlite:///var/crow.sqlite3") == "sqlite:///var/crow.sqlite3"
    assert env.boolean("CROW_TEST_VALUE", default=True) is True
    assert env.integer("CROW_TEST_VALUE", 3) == 3
    assert env.duration("CROW_TEST_VALUE", "15m") == 900
    assert env.choice("CROW_TEST_VALUE", "filesystem", ("filesystem", "s3")) == "filesystem"
    assert env.path_list("CROW_TEST_VALUE", "127.0.0.1,localhost") == ["127.0.0.1", "localhost"]
    assert env.secret("CROW_TEST_VALUE", "fallback") == "fallback"


def test_a_set_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROW_TEST_VALUE", "off")
    assert env.boolean("CROW_TEST_VALUE", default=True) is False
    monkeypatch.setenv("CROW_TEST_VALUE", "postgres://db/crow")
    assert env.string("CROW_TEST_VALUE", "sqlite://") == "postgres://db/crow"


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (lambda: env.boolean("CROW_TEST_VALUE"), "maybe"),
        (lambda: env.integer("CROW_TEST_VALUE", 1), "three"),
        (lambda: env.duration("CROW_TEST_VALUE", "1s"), "soon"),
        (lambda: env.choice("CROW_TEST_VALUE", "s3", ("filesystem", "s3")), "ftp"),
        (lambda: env.networks("CROW_TEST_VALUE", ""), "10.0.0.0/8,proxy.example"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, read, value: str) -> None:
    monkeypatch.setenv("CROW_TEST_VALUE", value)
    with pytest.raises(ImproperlyConfigured, match="CROW_TEST_VALUE"):
        read()


def test_networks_are_addresses_or_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROW_TEST_VALUE", "10.0.0.0/8, ::1,192.0.2.7")
    assert [str(network) for network in env.networks("CROW_TEST_VALUE", "")] == [
        "10.0.0.0/8",
        "::1/128",
        "192.0.2.7/32",
    ]
