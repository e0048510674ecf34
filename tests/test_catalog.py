"""bbperf.catalog on a real server: relations and their size, a table's own indexes (constraints'
indexes left out), extensions' schemas, and what outside a schema depends on it."""

from __future__ import annotations

from sqlalchemy import Engine, text

from bbperf import catalog
from bbperf.sqlnames import qualified
from bbperf.target import schema_of


def test_relation_exists_and_its_size(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    with schema_engine.begin() as conn:
        assert catalog.relation_exists(conn, schema, "appointments")
        assert not catalog.relation_exists(conn, schema, "no_such_table")
        assert not catalog.relation_exists(conn, "no_such_schema", "appointments")
        assert catalog.relation_size_bytes(conn, schema, "no_such_table") == 0
        assert catalog.relation_size_bytes(conn, schema, "organizations") == 0
        conn.execute(text("CREATE TABLE probe (x int)"))
        conn.execute(text("INSERT INTO probe SELECT generate_series(1, 1000)"))
        block = int(conn.execute(text("SELECT current_setting('block_size')::int")).scalar_one())
        size = catalog.relation_size_bytes(conn, schema, "probe")
        assert size > 0 and size % block == 0


def test_secondary_indexes_leave_out_the_indexes_of_constraints(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    with schema_engine.begin() as conn:
        assert catalog.secondary_indexes(conn, schema, ["appointments", "payments"]) == []
        conn.execute(text("CREATE INDEX zz_pay_user ON payments (user_id)"))
        conn.execute(text("CREATE INDEX aa_appt_start ON appointments (start_time)"))
        found = catalog.secondary_indexes(conn, schema, ["appointments", "payments"])
        assert [name for name, _ in found] == ["aa_appt_start", "zz_pay_user"]
        assert found[0][1].startswith("CREATE INDEX aa_appt_start ON ")
        assert catalog.secondary_indexes(conn, schema, ["payments"]) == found[1:]
        assert catalog.secondary_indexes(conn, "other", ["payments"]) == []


def test_extension_schema_on_an_engine_or_a_connection(schema_engine: Engine) -> None:
    with schema_engine.connect() as conn:
        installed = dict(conn.execute(text("SELECT extname, extnamespace::regnamespace::text FROM pg_extension")).all())  # fmt: skip
        assert catalog.extension_schema(conn, "plpgsql") == installed["plpgsql"] == "pg_catalog"
        assert catalog.extension_schema(conn, "no_such_extension") is None
    assert catalog.extension_schema(schema_engine, "plpgsql") == "pg_catalog"


def test_outside_dependents_name_what_a_cascade_would_remove(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    with schema_engine.begin() as conn:
        assert catalog.outside_dependents(conn, schema) == []
        conn.execute(text("CREATE SCHEMA elsewhere"))
        organizations = qualified(schema, "organizations")
        conn.execute(text(f"CREATE VIEW elsewhere.orgs AS SELECT id FROM {organizations}"))
        # A view depends through its rewrite rule, which lives where the view does.
        assert catalog.outside_dependents(conn, schema) == ['rule "_RETURN" on elsewhere.orgs']
