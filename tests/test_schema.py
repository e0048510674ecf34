"""bbperf's schema on PostgreSQL 18 and 15: created, owned, constrained, dropped only when bbperf's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from bbperf.errors import ConfigError, SchemaError
from bbperf.schema import (
    TABLE_ORDER,
    build_metadata,
    create_schema,
    drop_schema,
    require_schema,
    schema_status,
)


def test_create_status_drop_on_both_versions(
    any_server_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(any_server_url)
    st = create_schema(engine)
    assert st.exists and st.owned
    assert {t["table"] for t in st.tables} == set(TABLE_ORDER) | {"bbperf_meta"}
    # Idempotent.
    assert create_schema(engine).owned
    with engine.connect() as conn:
        require_schema(conn)
        version = conn.execute(text("show server_version_num")).scalar()
    assert int(version) >= 150000
    assert drop_schema(engine) is True
    assert schema_status(engine).exists is False
    assert drop_schema(engine) is False


def test_no_performance_indexes_only_keys(schema_engine) -> None:  # type: ignore[no-untyped-def]
    with schema_engine.connect() as conn:
        names = set(
            conn.execute(
                text("select indexname from pg_indexes where schemaname = 'bbperf'")
            ).scalars()
        )
    assert not any(n.startswith("idx_") for n in names)
    assert "users_email_key" in names and "appointments_pkey" in names


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("insert into users (email, name, role) values ('a@x', 'A', 'wizard')", "ck_users_role"),
        (
            "insert into organizations (name, slug, billing_plan) values ('o', 'o', 'free')",
            "ck_organizations_billing_plan",
        ),
        (
            "insert into services (name, category, base_price) values ('s', 'massage', 10)",
            "ck_services_category",
        ),
    ],
)
def test_check_constraints(schema_engine, sql: str, constraint: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError, match=constraint), schema_engine.begin() as conn:
        conn.execute(text(sql))


def test_money_is_exact_numeric(schema_engine) -> None:  # type: ignore[no-untyped-def]
    with schema_engine.connect() as conn:
        rows = conn.execute(
            text(
                "select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns "
                "where table_schema = 'bbperf' and column_name in ('price', 'amount', 'base_price')"
            )
        ).all()
    assert rows and all(
        r.data_type == "numeric" and (r.numeric_precision, r.numeric_scale) == (10, 2) for r in rows
    )


def test_refuses_foreign_schema(fresh_engine) -> None:  # type: ignore[no-untyped-def]
    with fresh_engine.begin() as conn:
        conn.execute(text("create schema bbperf"))
        conn.execute(text("create table bbperf.precious (id int)"))
    with pytest.raises(SchemaError, match="not created by bbperf"):
        create_schema(fresh_engine)
    with pytest.raises(SchemaError, match="refusing to drop"):
        drop_schema(fresh_engine)
    with fresh_engine.connect() as conn:
        assert conn.execute(text("select to_regclass('bbperf.precious') is not null")).scalar()


def test_require_schema_missing(fresh_engine) -> None:  # type: ignore[no-untyped-def]
    with fresh_engine.connect() as conn, pytest.raises(SchemaError, match="bbperf schema create"):
        require_schema(conn)


def test_custom_schema_name_and_bad_name(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url, schema="bench2")
    assert create_schema(engine).schema == "bench2"
    assert schema_status(engine).owned
    assert "bench2.appointments" in build_metadata("bench2").tables
    with pytest.raises(ConfigError, match="not a plain identifier"):
        build_metadata('x"; drop table users; --')
