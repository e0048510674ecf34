"""The ladder of six-figure metrics variants: what each needs, how to call it, and whether it
answers exactly as ``before`` does.

Every variant but ``after`` promises ``before``'s meaning; ``equivalence`` proves it per barber by
comparing the eight raw figures (money to the cent, counts exactly). A variant whose prerequisite is
missing — its index set not applied, the rollup not installed, the view not built for this as_of,
``denormalized``'s invariant broken by the data — is refused with one line naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Engine, text

from bbperf.errors import ConfigError, DataError
from bbperf.metrics.model import DEFAULT_TARGET, RawMetrics, SixFigureMetrics, derive
from bbperf.metrics.queries import check_barber, fetch_raw, resolve_as_of
from bbperf.metrics.rollup import fetch_from_rollup, read_params, require_rollup
from bbperf.metrics.shapes import PAYER_VIOLATIONS_SQL
from bbperf.metrics.variants import VIEW_NAME, fetch_from_view, fetch_prepared
from bbperf.target import schema_of

LADDER = (
    "before",
    "after",
    "after_equivalent",
    "barber_driven",
    "denormalized",
    "rollup",
    "view",
    "prepared",
)
# Variants that must answer exactly as before does (after changed two meanings on purpose).
EQUIVALENT = tuple(v for v in LADDER if v not in ("before", "after"))
# The indexes of the `metrics` set each variant's plan is built on.
NEEDS_INDEXES: dict[str, tuple[str, ...]] = {
    "barber_driven": (
        "idx_metrics_appointments_completed_user_client",
        "idx_metrics_appointments_user_id",
        "idx_metrics_payments_appointment",
    ),
    "denormalized": (
        "idx_metrics_appointments_completed_user_client",
        "idx_metrics_appointments_user_id",
        "idx_metrics_payments_completed_user_created",
    ),
}
Fetcher = Callable[[Engine, int, datetime], RawMetrics]

FETCHERS: dict[str, Fetcher] = {
    **{v: partial(fetch_raw, variant=v) for v in LADDER[:5]},
    "rollup": fetch_from_rollup,
    "view": fetch_from_view,
    "prepared": fetch_prepared,
}


def check_ladder_variant(variant: str) -> str:
    """``variant`` when it is on the ladder; ConfigError listing the choices otherwise."""
    if variant not in LADDER:
        raise ConfigError(f"unknown variant {variant!r}: choose one of {', '.join(LADDER)}")
    return variant


def payer_violations(engine: Engine) -> int:
    """Payments whose ``user_id`` is not their appointment's (or that have no appointment)."""
    with engine.connect() as conn:
        return int(conn.execute(text(PAYER_VIOLATIONS_SQL)).scalar_one())


def missing_indexes(engine: Engine, variant: str) -> list[str]:
    """The indexes ``variant`` is built on that do not exist (valid) in bbperf's schema."""
    wanted = NEEDS_INDEXES.get(variant, ())
    if not wanted:
        return []
    with engine.connect() as conn:
        present = set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND i.indisvalid AND c.relname = ANY(:names)"
                ),
                {"s": schema_of(engine), "names": list(wanted)},
            ).scalars()
        )
    return [name for name in wanted if name not in present]


def require(engine: Engine, variant: str, as_of: datetime) -> None:
    """DataError (one line, the fix) unless ``variant`` can answer with before's meaning here."""
    check_ladder_variant(variant)
    missing = missing_indexes(engine, variant)
    if missing:
        raise DataError(
            f"variant {variant} needs the metrics index set ({', '.join(missing)} missing): "
            "run `bbperf indexes apply --set metrics`"
        )
    if variant == "denormalized":
        bad = payer_violations(engine)
        if bad:
            raise DataError(
                f"variant denormalized refused: {bad} payments have a user_id other than their "
                "appointment's (or no appointment), so payments.user_id cannot stand in for it; "
                "use barber_driven"
            )
    elif variant == "rollup":
        with engine.connect() as conn:
            require_rollup(conn, schema_of(engine))
        read_params(0, as_of)
    elif variant == "view":
        with engine.connect() as conn:
            found = conn.execute(text("SELECT to_regclass(:v)"), {"v": VIEW_NAME}).scalar()
        if found is None:
            raise DataError(
                f"{VIEW_NAME} is not built: run `bbperf metrics --variant view --build-view`"
            )


def ladder_metrics(
    engine: Engine,
    user_id: int,
    variant: str = "after",
    target_annual: Decimal | int | str = DEFAULT_TARGET,
    as_of: str | date | datetime | None = None,
) -> SixFigureMetrics:
    """The metrics for one barber with any ladder variant, its prerequisites checked first."""
    check_ladder_variant(variant)
    check_barber(engine, user_id)
    when = resolve_as_of(engine, as_of)
    require(engine, variant, when)
    return derive(FETCHERS[variant](engine, user_id, when), target_annual)


@dataclass(frozen=True)
class Difference:
    """One raw figure on which ``variant`` and ``before`` disagree for one barber."""

    user_id: int
    metric: str
    before: Any
    variant: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "metric": self.metric,
            "before": self.before,
            "variant": self.variant,
        }


def differences(before: RawMetrics, other: RawMetrics) -> list[Difference]:
    """The raw figures that differ (Decimal equality: 54 equals 54.00, 54.001 does not)."""
    theirs = other.values()
    return [
        Difference(before.user_id, name, value, theirs[name])
        for name, value in before.values().items()
        if theirs[name] != value
    ]


def equivalence(
    engine: Engine,
    variant: str,
    user_ids: Iterable[int],
    as_of: str | date | datetime | None = None,
    *,
    before: Mapping[int, RawMetrics] | None = None,
) -> list[Difference]:
    """Every difference between ``variant`` and ``before`` over ``user_ids`` (empty: equivalent).

    Prerequisites are checked once, then each barber is computed both ways; ``before`` may hold
    before's answers already computed (by user id), so several variants share one computation.
    """
    check_ladder_variant(variant)
    when = resolve_as_of(engine, as_of)
    require(engine, variant, when)
    fetch = FETCHERS[variant]
    known = before or {}
    out: list[Difference] = []
    for user_id in user_ids:
        base = known[user_id] if user_id in known else fetch_raw(engine, user_id, when, "before")
        out += differences(base, fetch(engine, user_id, when))
    return out


def check_one(
    engine: Engine, user_id: int, variant: str, as_of: str | date | datetime | None = None
) -> dict[str, Any]:
    """``bbperf metrics --check``'s answer for one barber: equal or not, and every difference."""
    check_ladder_variant(variant)
    check_barber(engine, user_id)
    found = equivalence(engine, variant, [user_id], as_of)
    return {
        "variant": variant,
        "user_id": user_id,
        "equivalent": not found,
        "differences": [d.to_dict() for d in found],
    }


@dataclass(frozen=True)
class LadderCheck:
    """``bbperf metrics --check`` over many barbers: who was checked, with what, and every
    difference from before (by variant)."""

    user_ids: tuple[int, ...]
    variants: tuple[str, ...]
    failures: dict[str, list[Difference]]

    @property
    def equivalent(self) -> bool:
        return not any(self.failures.values())

    def lines(self) -> list[str]:
        """One line per differing figure, then one summary line."""
        out = [
            f"{variant} differs for barber {d.user_id}: {d.metric} before {d.before}, "
            f"{variant} {d.variant}"
            for variant, found in self.failures.items()
            for d in found
        ]
        failed = sum(len(found) for found in self.failures.values())
        out.append(
            f"{len(self.variants)} variants x {len(self.user_ids)} barbers: "
            + ("every figure equals before's" if not failed else f"{failed} figures differ")
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "equivalent": self.equivalent,
            "barbers": len(self.user_ids),
            "variants": list(self.variants),
            "failures": [
                {
                    "variant": variant,
                    "user_id": d.user_id,
                    "metric": d.metric,
                    "before": d.before,
                    "value": d.variant,
                }
                for variant, found in self.failures.items()
                for d in found
            ],
        }


def check_ladder(
    engine: Engine,
    user_ids: Iterable[int],
    variants: Iterable[str] = EQUIVALENT,
    as_of: str | date | datetime | None = None,
) -> LadderCheck:
    """Every ``variants``' figures against before's for every barber of ``user_ids`` (before
    computed once per barber); prerequisites are checked before any barber is."""
    when = resolve_as_of(engine, as_of)
    chosen = tuple(check_ladder_variant(v) for v in variants)
    users = tuple(user_ids)
    for variant in chosen:
        require(engine, variant, when)
    before = {u: fetch_raw(engine, u, when, "before") for u in users}
    failures = {v: equivalence(engine, v, users, when, before=before) for v in chosen}
    return LadderCheck(users, chosen, failures)
