"""Dataset profiles: TOML files in ``data_generators/``, validated into a frozen ``Profile``."""

from __future__ import annotations

import math
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bbperf.errors import ProfileError
from bbperf.schema import PAYMENT_STATUSES, SERVICE_CATEGORIES


def _profile_dir() -> Path:
    """``$BBPERF_PROFILE_DIR``, else the clone's ``data_generators/`` (editable install), else the copy
    a regular install puts under ``<prefix>/share/bbperf/data_generators``."""
    env = os.environ.get("BBPERF_PROFILE_DIR")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / "data_generators"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "bbperf" / "data_generators"


PROFILE_DIR = _profile_dir()

# Expected shape of a profile: section -> key -> kind. Kinds: "count" (int >= 1), "rate" (float >= 0),
# "share" (0..1), "int_range" ([lo, hi] ints, 1 <= lo <= hi), "range" ([lo, hi] floats, 0 < lo <= hi),
# "shares:N" (N shares summing to 1), "hour" (0..23), "text".
_SPEC: dict[str, dict[str, str]] = {
    "shops": {
        "barbers_per_scale": "rate",
        "barbers_per_shop_mean": "rate",
        "receptionist_share": "share",
        "second_shop_share": "share",
        "price_multiplier": "range",
    },
    "calendar": {
        "past_days": "count",
        "future_days": "count",
        "working_days_per_month": "rate",
        "appointments_per_day": "int_range",
        "weekday_weights": "shares:7",
        "opening_hour": "hour",
        "hour_weights": "shares",
        "lead_time_days_mean": "rate",
    },
    "activity": {"busy_barber_share": "share", "busy_barber_multiplier": "rate"},
    "clients": {
        "per_barber": "count",
        "zipf_exponent": "rate",
        "walk_in_share": "share",
        "email_share": "share",
    },
    "booking": {"staff_booked_share": "share", "notes_share": "share"},
    "payments": {
        "completed_share": "share",
        "delay_minutes_mean": "rate",
        "platform_fee_rate": "share",
    },
}
# Optional keys: (kind, default). foreign_payer_share: the share of payments whose user_id is another
# barber's account, not their appointment's user_id (breaks the `denormalized` metrics' invariant).
_OPTIONAL: dict[str, dict[str, tuple[str, Any]]] = {
    "payments": {"foreign_payer_share": ("share", 0.0)},
}
_SHARE_TABLES = {
    "status.past": ("completed", "cancelled", "no_show"),
    "status.future": ("pending", "confirmed"),
    "payments.status": PAYMENT_STATUSES,
}
_SERVICE_KEYS = {
    "name": "text",
    "category": "text",
    "price": "rate",
    "duration_minutes": "count",
    "weight": "rate",
}
_TOLERANCE = 1e-6
# Upper bounds that keep one generation inside a stated memory budget (~2 GB of client memory at
# the largest scale): a year of history is 365 days, a day has at most 100 bookings, and so on.
_MAX = {
    "shops.barbers_per_scale": 10_000,
    "shops.barbers_per_shop_mean": 1_000,
    "shops.price_multiplier": 100,
    "calendar.past_days": 3_660,
    "calendar.future_days": 3_660,
    "calendar.working_days_per_month": 31,
    "calendar.appointments_per_day": 100,
    "calendar.lead_time_days_mean": 365,
    "activity.busy_barber_multiplier": 100,
    "clients.per_barber": 100_000,
    "clients.zipf_exponent": 10,
    "payments.delay_minutes_mean": 100_000,
    "services.price": 100_000,
    "services.duration_minutes": 1_440,
    "services.weight": 1_000_000,
}
MAX_PROFILE_BYTES = 1_000_000


@dataclass(frozen=True)
class Service:
    """One entry of the service catalogue every barber offers (price in dollars)."""

    name: str
    category: str
    price: float
    duration_minutes: int
    weight: float


@dataclass(frozen=True)
class Profile:
    """A validated profile: ``sections`` maps "shops", "calendar", ... to their values."""

    name: str
    path: Path
    description: str
    sections: dict[str, dict[str, Any]]
    past_status: dict[str, float]
    future_status: dict[str, float]
    payment_status: dict[str, float]
    services: tuple[Service, ...]

    def __getattr__(self, section: str) -> dict[str, Any]:
        try:
            return self.__dict__["sections"][section]
        except KeyError:
            raise AttributeError(section) from None


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles shipped in ``directory`` (file stems)."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_profile(name_or_path: str | Path, directory: Path = PROFILE_DIR) -> Profile:
    """Load and validate a profile by name (``default``, ``tiny``, ``skewed``) or path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = directory / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(available_profiles(directory)) or "none"
            raise ProfileError(f"unknown profile {str(name_or_path)!r}: choose one of {known}")
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{path}: larger than {MAX_PROFILE_BYTES:,} bytes; not a profile")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text; a profile is a TOML file") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ProfileError(f"{path}: malformed TOML: {reason}") from None
    return parse_profile(data, path)


def parse_profile(data: dict[str, Any], path: Path) -> Profile:
    """Validate a profile's parsed TOML; every error names ``path`` and the offending key."""

    def fail(key: str, why: str) -> ProfileError:
        return ProfileError(f"{path}: {key}: {why}")

    allowed = {"description", "status", "services", *_SPEC}
    for key in data:
        if key not in allowed:
            raise fail(key, f"unknown key (expected one of {', '.join(sorted(allowed))})")
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in _SPEC.items():
        table = data.get(section)
        if not isinstance(table, dict):
            raise fail(section, "missing section")
        extra = (
            set(table)
            - set(keys)
            - set(_OPTIONAL.get(section, {}))
            - ({"status"} if section == "payments" else set())
        )
        if extra:
            raise fail(f"{section}.{sorted(extra)[0]}", "unknown key")
        sections[section] = {}
        for key, kind in keys.items():
            if key not in table:
                raise fail(f"{section}.{key}", "missing")
            sections[section][key] = _check(table[key], kind, f"{section}.{key}", fail)
        for key, (kind, default) in _OPTIONAL.get(section, {}).items():
            value = table.get(key, default)
            sections[section][key] = _check(value, kind, f"{section}.{key}", fail)
    status = data.get("status", {})
    if not isinstance(status, dict) or set(status) - {"past", "future"}:
        raise fail("status", "expected only [status.past] and [status.future]")
    shares = {
        "status.past": status.get("past"),
        "status.future": status.get("future"),
        "payments.status": data["payments"].get("status"),
    }
    parsed_shares = {
        key: _check_shares(value, _SHARE_TABLES[key], key, fail) for key, value in shares.items()
    }
    services = _check_services(data.get("services"), fail)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "expected text")
    return Profile(
        name=path.stem,
        path=path,
        description=description,
        sections=sections,
        past_status=parsed_shares["status.past"],
        future_status=parsed_shares["status.future"],
        payment_status=parsed_shares["payments.status"],
        services=services,
    )


def _number(value: Any, key: str, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(key, f"expected a finite number, got {value!r}")
    if value < 0:
        raise fail(key, f"must not be negative, got {value!r}")
    return float(value)


def _check(value: Any, kind: str, key: str, fail: Any) -> Any:
    checked = _check_kind(value, kind, key, fail)
    most = _MAX.get(re.sub(r"\[\d+\]", "", key))
    if most is not None:
        numbers = checked if isinstance(checked, tuple) else (checked,)
        if any(n > most for n in numbers):
            raise fail(key, f"must be at most {most:,}, got {value!r}")
    return checked


def _check_kind(value: Any, kind: str, key: str, fail: Any) -> Any:
    if kind == "text":
        if not isinstance(value, str) or not value:
            raise fail(key, "expected non-empty text")
        return value
    if kind in ("count", "hour"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, f"expected an integer, got {value!r}")
        least, most = (1, 10**9) if kind == "count" else (0, 23)
        if not least <= value <= most:
            raise fail(key, f"must be between {least} and {most}, got {value}")
        return value
    if kind in ("rate", "share"):
        number = _number(value, key, fail)
        if kind == "share" and number > 1:
            raise fail(key, f"a share must be between 0 and 1, got {value!r}")
        return number
    if kind in ("int_range", "range"):
        if not isinstance(value, list) or len(value) != 2:
            raise fail(key, f"expected [low, high], got {value!r}")
        low, high = (_number(v, key, fail) for v in value)
        if kind == "int_range" and not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise fail(key, f"expected integers, got {value!r}")
        if low > high or low <= 0:
            raise fail(key, f"expected 0 < low <= high, got {value!r}")
        return (int(low), int(high)) if kind == "int_range" else (low, high)
    # "shares" / "shares:N": a list of weights summing to 1
    if not isinstance(value, list) or not value:
        raise fail(key, f"expected a list of shares, got {value!r}")
    if ":" in kind and len(value) != int(kind.split(":")[1]):
        raise fail(key, f"expected {kind.split(':')[1]} shares, got {len(value)}")
    weights = tuple(_number(v, key, fail) for v in value)
    if abs(sum(weights) - 1) > _TOLERANCE:
        raise fail(key, f"shares must sum to 1, they sum to {sum(weights):.6g}")
    return weights


def _check_shares(table: Any, names: tuple[str, ...], key: str, fail: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise fail(key, "missing section")
    for name in table:
        if name not in names:
            raise fail(f"{key}.{name}", f"unknown key (expected {', '.join(names)})")
    shares = {name: _number(table.get(name, 0.0), f"{key}.{name}", fail) for name in names}
    if abs(sum(shares.values()) - 1) > _TOLERANCE:
        raise fail(key, f"shares must sum to 1, they sum to {sum(shares.values()):.6g}")
    return shares


def _check_services(entries: Any, fail: Any) -> tuple[Service, ...]:
    if not isinstance(entries, list) or not entries:
        raise fail("services", "expected at least one [[services]] entry")
    services = []
    for i, entry in enumerate(entries):
        where = f"services[{i}]"
        if not isinstance(entry, dict):
            raise fail(where, "expected a table")
        for key in entry:
            if key not in _SERVICE_KEYS:
                raise fail(f"{where}.{key}", "unknown key")
        values = {}
        for key, kind in _SERVICE_KEYS.items():
            if key not in entry:
                raise fail(f"{where}.{key}", "missing")
            values[key] = _check(entry[key], kind, f"{where}.{key}", fail)
        if values["category"] not in SERVICE_CATEGORIES:
            raise fail(f"{where}.category", f"must be one of {', '.join(SERVICE_CATEGORIES)}")
        services.append(Service(**values))
    total = sum(s.weight for s in services)
    if abs(total - 1) > _TOLERANCE:
        raise fail("services.weight", f"service weights must sum to 1, they sum to {total:.6g}")
    return tuple(services)
