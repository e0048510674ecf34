"""What the index page says, computed from a results document: the dataset, one verdict per notebook,
the claims table and the headline figures (pure: no I/O besides reading the claims catalogue).

Each notebook's verdict, claims and headline figures are read through its ``bbperf.experiment``
registered by the feature packages (``bbperf.report.experiments`` imports them all)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from bbperf.experiment import EXPERIMENTS
from bbperf.humanize import format_ci, format_p, format_value
from bbperf.report.experiments import FEATURE_STORIES  # noqa: F401  (fills EXPERIMENTS)

DATASET_KEYS = ("profile", "scale", "seed", "as_of")
ROAD_MAP = "road map"  # the claims.toml topic of the seed's next steps, shown in a table of its own


@dataclass(frozen=True)
class Dataset:
    """Which data a figure came from: the generator's inputs and a fingerprint of the loaded rows."""

    profile: str | None
    scale: float | None
    seed: int | None
    as_of: str | None
    fingerprint: str | None = None
    rows: int | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.profile, self.scale, self.seed, self.as_of)

    def same_as(self, other: Dataset) -> bool:
        if self.key != other.key:
            return False
        return not (
            self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint
        )

    def describe(self) -> str:
        scale = f"{self.scale:g}" if isinstance(self.scale, int | float) else self.scale
        text = f"profile {self.profile}, scale {scale}, seed {self.seed}, as of {self.as_of}"
        if self.rows is not None:
            text += f" ({self.rows:,} rows)"
        return text


def fingerprint(fingerprints: dict[str, Any] | None) -> str | None:
    """12 hex digits summarising every table's row count and checksum."""
    if not fingerprints:
        return None
    canonical = json.dumps(fingerprints, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def dataset_of(info: dict[str, Any] | None) -> Dataset | None:
    """A ``Dataset`` from a dataset's provenance (``bbperf.generate.dataset_info``) or None."""
    if not info or not any(info.get(k) is not None for k in DATASET_KEYS):
        return None
    prints = info.get("fingerprints") or {}
    rows = sum(int(t.get("rows", 0)) for t in prints.values()) if prints else None
    scale = info.get("scale")
    return Dataset(
        profile=info.get("profile"),
        scale=float(scale) if isinstance(scale, int | float) else scale,
        seed=info.get("seed"),
        as_of=str(info["as_of"]) if info.get("as_of") is not None else None,
        fingerprint=info.get("fingerprint") or fingerprint(prints),
        rows=rows,
    )


@dataclass
class NotebookLine:
    """One notebook's line on the index page."""

    name: str
    html: str | None
    ipynb: str
    ok: bool
    error: str | None
    duration_s: float
    verdict: str | None
    dataset: Dataset | None
    other_dataset: bool
    chart: str | None = None
    sections: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ClaimRow:
    topic: str
    text: str
    measured: str
    verdict: str
    notebook: str | None


@dataclass
class HeadlineRow:
    notebook: str
    label: str
    value: str
    ci: str
    significance: str
    n: str


@dataclass
class IndexPage:
    """Everything the index template shows, already rounded for reading."""

    run_id: str
    ok: bool
    dataset: Dataset | None
    notebooks: list[NotebookLine]
    claims: list[ClaimRow]
    headlines: list[HeadlineRow]
    provenance: list[tuple[str, str]] = field(default_factory=list)
    side_effects: list[str] = field(default_factory=list)

    @property
    def claims_checked(self) -> int:
        return sum(1 for c in self.claims if c.verdict != "not measured")

    @property
    def summary_claims(self) -> list[ClaimRow]:
        """The claims of the seed's optimization summary (what it says it did)."""
        return [c for c in self.claims if c.topic != ROAD_MAP]

    @property
    def road_map(self) -> list[ClaimRow]:
        """The seed's next steps, each measured before anyone builds it."""
        return [c for c in self.claims if c.topic == ROAD_MAP]


def load_claims() -> list[dict[str, str]]:
    """The seed's claims catalogue (bbperf/report/claims.toml), in order."""
    text = resources.files("bbperf.report").joinpath("claims.toml").read_text(encoding="utf-8")
    return list(tomllib.loads(text)["claim"])


def _saved(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return list(nb.get("results") or [])


def notebook_dataset(nb: dict[str, Any]) -> Dataset | None:
    """The dataset a notebook says it used (``Results.use_dataset``), else the one loaded after it ran."""
    for saved in _saved(nb):
        found = dataset_of(saved.get("dataset"))
        if found:
            return found
    return dataset_of(nb.get("dataset"))


def notebook_lines(document: dict[str, Any], report_dataset: Dataset | None) -> list[NotebookLine]:
    lines = []
    for name, nb in document["notebooks"].items():
        used = notebook_dataset(nb)
        other = bool(used and report_dataset and not used.same_as(report_dataset))
        lines.append(
            NotebookLine(
                name=name,
                html=nb.get("html"),
                ipynb=nb.get("ipynb", f"{name}.ipynb"),
                ok=nb.get("status") == "ok",
                error=nb.get("error"),
                duration_s=float(nb.get("duration_s") or 0.0),
                verdict=EXPERIMENTS.get(name).verdict(_saved(nb)),
                dataset=used,
                other_dataset=other,
                chart=nb.get("chart"),
                sections=list(nb.get("sections") or []),
            )
        )
    return lines


def claim_rows(document: dict[str, Any], catalogue: Sequence[dict[str, str]]) -> list[ClaimRow]:
    """Every catalogued claim with what a notebook measured for it; unknown ids are listed after."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, nb in document["notebooks"].items():
        for claim in EXPERIMENTS.get(name).claims(_saved(nb)):
            found[claim["claim"]] = (name, claim)
    rows = []
    known = {c["id"] for c in catalogue}
    for entry in catalogue:
        notebook, claim = found.get(entry["id"], (None, None))
        rows.append(
            ClaimRow(
                topic=entry.get("topic", ""),
                text=entry["text"],
                measured=claim["measured"] if claim else "",
                verdict=claim["verdict"] if claim else "not measured",
                notebook=notebook,
            )
        )
    for claim_id, (notebook, claim) in found.items():
        if claim_id not in known:
            rows.append(ClaimRow("other", claim_id, claim["measured"], claim["verdict"], notebook))
    return rows


def _label(fig: dict[str, Any]) -> str:
    return fig.get("description") or fig["name"].replace("_", " ")


def _significance(fig: dict[str, Any]) -> str:
    significant = fig.get("significant")
    if significant is None:
        return format_p(fig.get("p_value"))
    word = "significant" if significant else "not significant"
    p = format_p(fig.get("p_value"))
    return f"{word} ({p})" if p else word


def headline_rows(figures: Sequence[dict[str, Any]]) -> list[HeadlineRow]:
    """Headline figures, rounded, with CI and significance; side effects of the run are left out."""
    rows = []
    for fig in figures:
        if not EXPERIMENTS.get(fig["notebook"]).headline(fig):
            continue
        unit = fig.get("unit") or ""
        rows.append(
            HeadlineRow(
                notebook=fig["notebook"],
                label=_label(fig),
                value=format_value(fig.get("value"), unit),
                ci=format_ci(fig.get("ci_low"), fig.get("ci_high"), unit),
                significance=_significance(fig),
                n="" if fig.get("n") is None else f"{fig['n']:,}",
            )
        )
    return rows


def side_effect_labels(figures: Sequence[dict[str, Any]]) -> list[str]:
    """The figures left out because the run itself caused them, as "label (notebook)"."""
    return [f"{_label(fig)} ({fig['notebook']})" for fig in figures if fig.get("side_effect")]


def provenance_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    """The compact provenance lines: code, server, settings, machine, times."""
    server = prov.get("postgresql") or {}
    machine = prov.get("machine") or {}
    git = (prov.get("bbperf") or {}).get("git") or {}
    settings = server.get("settings") or {}
    version = str(server.get("version") or server.get("error", ""))
    return [
        (
            "bbperf",
            f"{(prov.get('bbperf') or {}).get('version', '')} "
            f"{git.get('commit', '')[:12]}{' (modified tree)' if git.get('dirty') else ''}".strip(),
        ),
        ("PostgreSQL", version.split(" on ")[0]),
        ("target", str(prov.get("target") or "")),
        ("settings", ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)),
        (
            "machine",
            f"{machine.get('platform', '')}, {machine.get('cpu_count', '')} CPUs, "
            f"{(machine.get('memory_bytes') or 0) / 2**30:.1f} GiB, Python {machine.get('python', '')}",
        ),
        ("started / finished", f"{prov.get('started_at', '')} / {prov.get('finished_at', '')}"),
    ]


def build_index_page(document: dict[str, Any]) -> IndexPage:
    """The index page's content from a results document (see ``bbperf.report.index``)."""
    report_dataset = dataset_of(document.get("dataset")) or dataset_of(
        (document.get("provenance") or {}).get("dataset")
    )
    return IndexPage(
        run_id=document["run_id"],
        ok=bool(document.get("ok")),
        dataset=report_dataset,
        notebooks=notebook_lines(document, report_dataset),
        claims=claim_rows(document, load_claims()),
        headlines=headline_rows(document.get("figures") or []),
        side_effects=side_effect_labels(document.get("figures") or []),
        provenance=provenance_rows(document.get("provenance") or {}),
    )
