"""The load's progress bar: rows loaded against an estimate of the total, with rows/s and an ETA."""

from __future__ import annotations

from typing import Any

from bbperf.generate.cast import n_barbers
from bbperf.generate.profile import Profile

DAYS_PER_MONTH = 30.44


def estimated_rows(profile: Profile, scale: float) -> int:
    """About how many rows (all tables) ``profile`` makes at ``scale``: the bar's total."""
    barbers = n_barbers(profile, scale)
    cal = profile.calendar
    days = cal["past_days"] + cal["future_days"]
    lo, hi = cal["appointments_per_day"]
    activity = profile.activity
    busy = 1 + activity["busy_barber_share"] * (activity["busy_barber_multiplier"] - 1)
    per_day = min(1.0, cal["working_days_per_month"] / DAYS_PER_MONTH) * (lo + hi) / 2 * busy
    appointments = barbers * days * per_day
    past = cal["past_days"] / days
    payments = (
        appointments * past * profile.past_status["completed"] * profile.payments["completed_share"]
    )
    clients = barbers * profile.clients["per_barber"]
    small = barbers * (len(profile.services) + 3)
    return int(appointments + payments + clients + small)


class Progress:
    """One tqdm bar (``enabled``) whose total is an estimate, fixed to the real count at the end."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc="loading", unit=" rows", unit_scale=True, smoothing=0.1
            )

    def update(self, table: str, rows: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(table, refresh=False)
            self.bar.update(rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n
            self.bar.set_postfix_str("done", refresh=False)
            self.bar.close()
