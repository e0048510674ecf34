"""Index sets: definitions, TOML loading, validation, apply/drop/status, repair, SQL and Alembic export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main
from bbperf.indexes import (
    SEED,
    IndexColumn,
    IndexDef,
    IndexSet,
    IndexSetError,
    alembic,
    apply,
    drop,
    load_set,
    load_toml,
    sql,
    status,
    validate,
)
from bbperf.indexes.liveschema import Catalog, ExistingIndex
from bbperf.indexes.validate import check

BROKEN = Path(__file__).parent / "data" / "broken_migration.toml"
BROKEN_COLUMNS = {
    "idx_users_primary_org": "users has no column primary_organization_id",
    "idx_appointments_start_end": "appointments has no column end_time",
    "idx_payments_stripe_charge": "payments has no column stripe_charge_id",
    "idx_clients_user_id": "clients has no column user_id",
    "idx_clients_last_visit": "clients has no column last_visit",
    "idx_services_user_id": "services has no column user_id",
}


def _ix(name: str, table: str, *columns: str, where: str | None = None) -> IndexDef:
    return IndexDef(name, table, tuple(IndexColumn(c) for c in columns), where=where)


def _names(engine: Engine, schema: str = "bbperf") -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": schema}
        )
        return {r[0] for r in rows}


# --- pure: model, sets, TOML, check -------------------------------------------------------------


def test_seed_holds_every_original_index_with_its_name() -> None:
    assert len(SEED) == 16
    barber = SEED.get("idx_appointments_barber_status_start")
    assert barber.column_names == ("barber_id", "status", "start_time")
    assert "barber_schedule" in barber.serves
    assert "user_organizations (user_id) WHERE is_primary" in SEED.get("idx_users_primary_org").note
    assert load_set("none").indexes == ()


def test_ddl_renders_order_include_where_and_method() -> None:
    index = IndexDef(
        "idx_x", "appointments", (IndexColumn("barber_id"), IndexColumn("start_time", "DESC")),
        include=("status",), where="status <> 'cancelled'",
    )  # fmt: skip
    assert index.create_sql("bbperf", concurrently=True) == (
        "CREATE INDEX CONCURRENTLY idx_x ON bbperf.appointments (barber_id, start_time DESC) "
        "INCLUDE (status) WHERE status <> 'cancelled'"
    )
    brin = IndexDef("idx_b", "payments", (IndexColumn("created_at"),), method="brin")
    assert brin.create_sql("s") == "CREATE INDEX idx_b ON s.payments USING brin (created_at)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"where": "true; DROP TABLE users"}, "WHERE must be one predicate"),
        ({"method": "hash"}, "method 'hash'"),
        ({"columns": ()}, "at least one column"),
        ({"name": "Bad-Name"}, "not a plain identifier"),
    ],
)
def test_malformed_definitions_are_refused(kwargs: dict, message: str) -> None:
    base = {"name": "idx_ok", "table": "users", "columns": (IndexColumn("role"),)}
    with pytest.raises(Exception, match=message):
        IndexDef(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[index]]\nname = "i"\ntable = "users"\ncolumns = ["role"]\nunique = true\n', "index[0]: unknown key 'unique'"),
        ('[[index]]\nname = "i"\ntable = "users"\n', "index[0]: missing key 'columns'"),
        ('[[index]]\nname = "i"\ntable = "users"\ncolumns = ["role UP"]\n', "index[0]: column 'role UP'"),
        ('[[index]]\nname = "i"\ntable = "users"\ncolumns = "role"\n', "index[0].columns must be a list"),
        ('[[index]]\nname = "i"\ntable = "users"\ncolumns = ["role"]\nmethod = "hash"\n', "index[0]: index i: method"),
        ('title = "x"\n', "unknown key 'title'"),
        ("name = [\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_toml_errors_name_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(body)
    with pytest.raises(IndexSetError, match=r"mine\.toml") as info:
        load_toml(path)
    assert message in str(info.value)


def test_toml_set_loads_with_orders_and_options(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\n[[index]]\nname = "idx_a"\ntable = "appointments"\n'
        'columns = ["barber_id", "start_time DESC"]\ninclude = ["status"]\n'
        'where = "status = \'completed\'"\nserves = ["barber_schedule"]\n'
    )
    loaded = load_set(str(path))
    assert loaded.name == "mine" and loaded.source == str(path)
    assert loaded.indexes[0].columns[1] == IndexColumn("start_time", "DESC")
    assert loaded.serving("barber_schedule") == loaded.indexes
    with pytest.raises(IndexSetError, match="unknown index set 'nope'"):
        load_set("nope")


def test_check_flags_duplicates_and_prefixes_within_the_set_and_existing() -> None:
    catalog = Catalog(
        "bbperf",
        columns={"appointments": frozenset({"id", "barber_id", "status", "start_time", "client_id"})},
        indexes=(
            ExistingIndex("appointments_pkey", "appointments", (IndexColumn("id"),), (), None,
                          "btree", True, True, True, 8192, ""),
        ),
    )  # fmt: skip
    index_set = IndexSet(
        "t",
        (
            _ix("a_barber", "appointments", "barber_id"),
            _ix("a_barber_status", "appointments", "barber_id", "status"),
            _ix("a_barber_status_again", "appointments", "barber_id", "status"),
            _ix("a_id", "appointments", "id"),
            _ix("a_barber_partial", "appointments", "barber_id", where="status = 'pending'"),
        ),
    )
    report = check(index_set, catalog).set_index("index")
    assert report.loc["a_barber", "status"] == "redundant"
    assert "a_barber_status" in report.loc["a_barber", "reason"]
    assert report.loc["a_barber_status", "status"] == "ok"
    assert report.loc["a_barber_status_again", "status"] == "duplicate"
    assert report.loc["a_id", "status"] == "duplicate"
    assert "appointments_pkey" in report.loc["a_id", "reason"]
    assert report.loc["a_barber_partial", "status"] == "ok"


# --- against a live (empty) schema --------------------------------------------------------------


def test_seed_validation_reports_the_originals_mistakes(schema_engine: Engine) -> None:
    report = validate(schema_engine, SEED).set_index("index")
    assert report.loc["idx_users_email", "status"] == "duplicate"
    assert "users_email_key" in report.loc["idx_users_email", "reason"]
    assert report.loc["idx_users_primary_org", "status"] == "unknown column"
    assert "is_primary" in report.loc["idx_users_primary_org", "note"]
    rest = report.drop(["idx_users_email", "idx_users_primary_org"])
    assert set(rest["action"]) == {"create"}


def test_broken_migration_is_reported_and_nothing_applied(schema_engine: Engine) -> None:
    broken = load_toml(BROKEN)
    report = validate(schema_engine, broken).set_index("index")
    for name, reason in BROKEN_COLUMNS.items():
        assert report.loc[name, "status"] == "unknown column"
        assert report.loc[name, "reason"] == reason
    assert report.loc["idx_user_organization_user", "status"] == "unknown table"
    assert (report["action"] == "skip").all()
    before = _names(schema_engine)
    result = apply(schema_engine, broken)
    assert result["result"].str.startswith("skipped").all()
    assert _names(schema_engine) == before


def test_apply_status_drop_round_trip(schema_engine: Engine) -> None:
    keys = _names(schema_engine)
    first = apply(schema_engine, SEED).set_index("index")
    assert (first["result"] == "created").sum() == 14
    assert first.loc["idx_appointments_barber_status_start", "build_ms"] > 0
    again = apply(schema_engine, SEED).set_index("index")
    assert (again["result"] == "exists").sum() == 14
    st = status(schema_engine, SEED).set_index("index")
    assert (
        bool(st.loc["idx_payments_created_at", "valid"])
        and st.loc["idx_payments_created_at", "size_bytes"] > 0
    )
    assert st.loc["idx_payments_created_at", "build_ms"] > 0
    assert not st.loc["idx_users_primary_org", "exists"]
    with schema_engine.connect() as conn:
        conn.execute(text("SELECT * FROM appointments WHERE barber_id = 1 AND status = 'pending'"))
    dropped = drop(schema_engine, SEED).set_index("index")
    assert (dropped["result"] == "dropped").sum() == 14
    assert _names(schema_engine) == keys
    assert status(schema_engine).shape[0] == len(keys)


def test_drop_touches_only_named_indexes_in_bbperf_schema(schema_engine: Engine) -> None:
    with schema_engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA other; CREATE TABLE other.users (role text)"))
        conn.execute(text("CREATE INDEX idx_users_role ON other.users (role)"))
        conn.execute(text("CREATE INDEX idx_mine ON bbperf.users (name)"))
    apply(schema_engine, SEED)
    keys = IndexSet("keys", (_ix("users_pkey", "users", "id"), _ix("users", "users", "id")))
    refused = drop(schema_engine, keys).set_index("index")
    assert refused.loc["users_pkey", "result"] == "refused"
    assert refused.loc["users", "result"] == "refused"
    drop(schema_engine, SEED)
    assert "idx_users_role" in _names(schema_engine, "other")
    assert {"idx_mine", "users_pkey"} <= _names(schema_engine)


def test_interrupted_concurrent_build_is_shown_and_repaired(schema_engine: Engine) -> None:
    with schema_engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, name) VALUES ('a@x', 'A')"))
        conn.execute(text(
            "INSERT INTO appointments (user_id, start_time, price) "
            "VALUES (1, now(), 10), (1, now(), 10)"
        ))  # fmt: skip
    raw = schema_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with pytest.raises(Exception, match="could not create unique index"):
        raw.execute(text(
            "CREATE UNIQUE INDEX CONCURRENTLY idx_appointments_start_time "
            "ON bbperf.appointments (user_id)"
        ))  # fmt: skip
    raw.close()
    st = status(schema_engine, SEED).set_index("index")
    assert st.loc["idx_appointments_start_time", "exists"]
    assert not st.loc["idx_appointments_start_time", "valid"]
    assert (
        validate(schema_engine, SEED)
        .set_index("index")
        .loc["idx_appointments_start_time", "action"]
        == "repair"
    )
    result = apply(schema_engine, SEED, concurrently=True).set_index("index")
    assert result.loc["idx_appointments_start_time", "result"] == "repaired"
    st = status(schema_engine, SEED).set_index("index")
    assert st.loc["idx_appointments_start_time", "valid"]
    assert "(start_time)" in st.loc["idx_appointments_start_time", "definition"]


def test_bad_predicate_is_skipped_and_the_rest_applied(schema_engine: Engine) -> None:
    index_set = IndexSet("p", (
        _ix("idx_bad", "appointments", "barber_id", where="no_such_column = 1"),
        _ix("idx_primary", "user_organizations", "user_id", where="is_primary"),
    ))  # fmt: skip
    result = apply(schema_engine, index_set).set_index("index")
    assert result.loc["idx_bad", "result"] == "skipped: bad predicate"
    assert "no_such_column" in result.loc["idx_bad", "reason"]
    assert result.loc["idx_primary", "result"] == "created"


def test_sql_export_applies_cleanly(schema_engine: Engine) -> None:
    ddl = sql(SEED, skip={"idx_users_primary_org": "no such column"})
    assert "-- skipped idx_users_primary_org: no such column" in ddl
    with schema_engine.begin() as conn:
        for statement in ddl.split(";\n"):
            if statement.strip() and not statement.lstrip().startswith("-- skipped"):
                conn.execute(text(statement))
    assert "idx_payments_user_status_created" in _names(schema_engine)


def test_alembic_migration_upgrades_and_downgrades(schema_engine: Engine) -> None:
    pytest.importorskip("alembic")
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    mine = IndexSet("m", (
        IndexDef("idx_a", "appointments", (IndexColumn("barber_id"), IndexColumn("start_time", "DESC")),
                 include=("status",), where="status <> 'cancelled'"),
        _ix("idx_b", "payments", "user_id"),
    ))  # fmt: skip
    source = alembic(mine, schema="bbperf", down_revision="abc123")
    assert "down_revision = 'abc123'" in source
    namespace: dict = {}
    with schema_engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        namespace["op"] = ops
        code = compile(source, "migration.py", "exec")
        exec(code, namespace)  # the module imports alembic.op; rebind to our live context
        namespace["op"] = ops
        namespace["upgrade"]()
        defs = {r[0]: r[1] for r in conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'bbperf'"))}  # fmt: skip
        assert "start_time DESC" in defs["idx_a"] and "INCLUDE (status)" in defs["idx_a"]
        namespace["downgrade"]()
    assert not {"idx_a", "idx_b"} & _names(schema_engine)


def test_cli_validate_apply_status_drop(
    schema_engine: Engine, capsys: pytest.CaptureFixture
) -> None:
    url = schema_engine.url.render_as_string(hide_password=False)
    base = ["--database-url", url, "indexes"]
    assert main([*base, "validate", "--set", str(BROKEN)]) == 1
    assert main([*base, "apply", "--set", "seed"]) == 0
    capsys.readouterr()
    assert main([*base, "status", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["index"] for r in rows if r["exists"]} >= {"idx_appointments_barber_client"}
    assert main([*base, "drop"]) == 0
    assert main([*base, "alembic", "--validate"]) == 0
    out = capsys.readouterr().out
    assert "idx_users_primary_org: unknown column" in out and "def downgrade()" in out


def test_only_narrows_a_set_to_the_named_indexes_and_what_they_serve() -> None:
    narrowed = SEED.only(["idx_appointments_start_time", "not_in_the_set"])
    assert narrowed.name == SEED.name
    assert [i.name for i in narrowed.indexes] == ["idx_appointments_start_time"]
    assert narrowed.serves == SEED.get("idx_appointments_start_time").serves
    assert len(SEED.only([])) == 0 and len(SEED) > 1
