"""Seeded, vectorized data generation for the BookedBarber schema, loaded by binary COPY."""

from bbperf.generate.load import (
    DatasetInfo,
    dataset_info,
    ensure_dataset,
    generate,
    require_dataset,
)
from bbperf.generate.profile import Profile, available_profiles, load_profile

__all__ = [
    "DatasetInfo",
    "Profile",
    "available_profiles",
    "dataset_info",
    "ensure_dataset",
    "generate",
    "load_profile",
    "require_dataset",
]
