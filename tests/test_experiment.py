"""The experiment interface and its registry (bbperf/experiment.py): what each feature registers, how
the report reads a notebook's saved results through it, and the shared wording helpers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import bbperf.report.experiments  # noqa: F401  (every feature's story registers its experiment)
from bbperf.experiment import (
    EXPERIMENTS,
    Experiment,
    Experiments,
    ci_verdict,
    times,
    times_ci,
)
from bbperf.report.indexpage import load_claims
from bbperf.results import Results

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_every_notebook_has_one_registered_experiment() -> None:
    stems = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert stems, NOTEBOOKS
    assert {e.notebook for e in EXPERIMENTS} == stems
    assert all(e.title and e.title != e.notebook for e in EXPERIMENTS)


def test_every_catalogued_claim_belongs_to_exactly_one_experiment() -> None:
    owned = [claim for e in EXPERIMENTS for claim in e.claim_ids]
    assert len(owned) == len(set(owned))
    assert set(owned) == {c["id"] for c in load_claims()}


def test_register_refuses_a_second_experiment_for_a_notebook_or_a_claim() -> None:
    registry = Experiments()
    first = Experiment("07_partitioning", "Partitioning", ("roadmap.partitioning_time_ranges",))
    assert registry.register(first) is first
    assert registry.register(replace(first)) == first  # the same again
    with pytest.raises(ValueError, match="07_partitioning is registered twice"):
        registry.register(Experiment("07_partitioning", "Other title"))
    with pytest.raises(ValueError, match="already belong to 07_partitioning"):
        registry.register(Experiment("99_other", "Other", ("roadmap.partitioning_time_ranges",)))
    assert len(registry) == 1 and "99_other" not in registry
    assert registry.owner("roadmap.partitioning_time_ranges") == first
    assert registry.owner("no.such.claim") is None


def test_an_unregistered_notebook_is_read_the_same_way() -> None:
    plain = Experiments().get("ok_figures")
    assert (plain.notebook, plain.title, plain.claim_ids) == ("ok_figures", "ok_figures", ())


def test_experiment_reads_verdict_claims_and_headlines_from_saved_results() -> None:
    first, second = Results("07_partitioning"), Results("07_partitioning")
    first.set_verdict("Faster.")
    first.claim("roadmap.partitioning_time_ranges", "median ×2", "confirmed")
    second.set_verdict("  Less   WAL. ")
    saved = [first.to_dict(), second.to_dict()]
    experiment = EXPERIMENTS.get("07_partitioning")
    assert experiment.verdict(saved) == "Faster. Less WAL."
    assert experiment.verdict([Results("07_partitioning").to_dict()]) is None
    assert experiment.claims(saved) == [
        {
            "claim": "roadmap.partitioning_time_ranges",
            "measured": "median ×2",
            "verdict": "confirmed",
            "figure": None,
        }
    ]
    assert experiment.headline({"headline": True})
    assert not experiment.headline({"headline": True, "side_effect": True})
    assert not experiment.headline({"headline": False})


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.234, "×1.23"), (float("nan"), "n/a"), (float("inf"), "n/a"), (None, "n/a")],
)
def test_times(value: float | None, text: str) -> None:
    assert times(value) == text


def test_times_ci_and_ci_verdict() -> None:
    assert times_ci(2.0, 1.5, 2.5) == "×2.00 (95 % CI ×1.50 – ×2.50)"
    assert ci_verdict(1.01, 3.0) == "confirmed"
    assert ci_verdict(0.5, 0.99) == "refuted"
    assert ci_verdict(0.9, 1.1) == "partly"
    assert ci_verdict(1.0, 1.0) == "partly"  # a bound of exactly 1 decides nothing


def test_the_partition_package_front_door_is_lazy_and_complete() -> None:
    code = "import sys; import bbperf.partition; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import bbperf.partition as partition

    for name in partition.__all__:
        assert getattr(partition, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = partition.no_such_name


def test_compare_does_not_load_the_feature_stories() -> None:
    code = "import sys; import bbperf.report.compare; print('bbperf.report.experiments' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
