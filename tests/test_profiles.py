"""Profiles: the shipped ones load; malformed ones fail with the file and the key named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bbperf.errors import ProfileError
from bbperf.generate.profile import PROFILE_DIR, available_profiles, load_profile


def test_shipped_profiles_load() -> None:
    assert {"default", "tiny", "skewed"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert abs(sum(profile.past_status.values()) - 1) < 1e-9


def test_skewed_profile_is_more_skewed_than_default() -> None:
    default, skewed = load_profile("default"), load_profile("skewed")
    assert skewed.clients["zipf_exponent"] > default.clients["zipf_exponent"]
    assert skewed.activity["busy_barber_share"] > default.activity["busy_barber_share"] == 0


def _write(tmp_path: Path, edit: Any) -> Path:
    data = tomllib.loads((PROFILE_DIR / "tiny.toml").read_text())
    edit(data)
    path = tmp_path / "broken.toml"
    path.write_text(_dump(data))
    return path


def _dump(data: dict[str, Any], prefix: str = "") -> str:
    """Just enough TOML writing for profiles (tables, arrays of tables, scalars, lists)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            tables.extend((key, [v]) for v in value)
        else:
            lines.append(f"{key} = {_value(value)}")
    out = "\n".join(lines) + "\n"
    for key, value in tables:
        name = f"{prefix}{key}"
        if isinstance(value, list):
            out += f"[[{name}]]\n" + _dump(value[0], name + ".")
        else:
            out += f"[{name}]\n" + _dump(value, name + ".")
    return out


def _value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def test_round_trip_of_the_test_writer(tmp_path: Path) -> None:
    assert load_profile(_write(tmp_path, lambda d: None)).sections == load_profile("tiny").sections


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["calendar"].update(past_dayz=3), "calendar.past_dayz"),
        (lambda d: d["clients"].update(zipf_exponent=-1.0), "clients.zipf_exponent"),
        (lambda d: d["booking"].update(staff_booked_share=1.5), "booking.staff_booked_share"),
        (lambda d: d["calendar"].update(past_days=0), "calendar.past_days"),
        (lambda d: d["calendar"].update(past_days=2.5), "calendar.past_days"),
        (lambda d: d["status"]["past"].update(completed=0.5), "status.past"),
        (lambda d: d["status"]["future"].update(postponed=0.1), "status.future.postponed"),
        (lambda d: d["payments"]["status"].update(failed=-0.02), "payments.status.failed"),
        (
            lambda d: d["calendar"].update(weekday_weights=[0.5, 0.5, 0.5, 0, 0, 0, 0]),
            "calendar.weekday_weights",
        ),
        (lambda d: d["calendar"].update(weekday_weights=[0.5, 0.5]), "calendar.weekday_weights"),
        (
            lambda d: d["calendar"].update(appointments_per_day=[14, 8]),
            "calendar.appointments_per_day",
        ),
        (lambda d: d["services"][0].update(category="massage"), "services[0].category"),
        (lambda d: d["services"][1].update(weight=0.9), "services.weight"),
        (lambda d: d.pop("clients"), "clients"),
    ],
)
def test_invalid_profile_names_file_and_key(tmp_path: Path, edit: Any, key: str) -> None:
    path = _write(tmp_path, edit)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_malformed_toml_and_unknown_profile(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[calendar\npast_days = 3\n")
    with pytest.raises(ProfileError, match=f"{path}: malformed TOML"):
        load_profile(path)
    with pytest.raises(ProfileError, match="unknown profile 'nope': choose one of .*default"):
        load_profile("nope")
