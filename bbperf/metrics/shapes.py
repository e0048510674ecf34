"""Two more one-statement shapes of the six-figure metrics, both with ``before``'s meaning exactly.

* ``barber_driven``: every part starts from this barber's own rows — appointments by ``user_id``,
  then payments by ``appointment_id`` — so its cost grows with the barber, not with the dataset.
  ``OFFSET 0`` keeps the payments lookup a per-appointment probe: left to itself, the planner
  prefers to hash every completed payment of the dataset once it guesses the barber has many
  appointments. The 30-day and 365-day appointment figures come from one scan; with the ``metrics`` index set the
  completed appointments arrive sorted by client, so ``COUNT(DISTINCT client_id)`` needs no sort.
* ``denormalized``: the payments are found by ``payments.user_id`` instead of through the barber's
  appointments. That is ``before``'s meaning only where every payment's ``user_id`` equals its
  appointment's ``user_id`` (and every payment has an appointment): ``ladder.payer_violations``
  counts the rows that break it, and the variant is refused when there are any. Each figure is one
  index-only scan of the ``metrics`` set over as few index tuples as its meaning allows: the
  30-day payments (count, sum, and their appointment ids), the clients of exactly those appointments
  (one ``= ANY`` descent, not the barber's every appointment), the all-time completed payments for
  the average ticket, the 365-day completed appointments (sorted by client).

Windows and binds are ``queries.window_params``'s; the result row has the CTE variants' columns.
"""

from __future__ import annotations

_TAIL = """
SELECT pm.total_revenue, pm.avg_ticket, pm.payment_count, pc.unique_clients,
       am.total_minutes, am.completed_appointments,
       am.year_clients, am.year_visits
FROM payment_metrics pm
CROSS JOIN payment_clients pc
CROSS JOIN appointment_metrics am"""

# One scan of the barber's completed appointments in the 365-day window serves both windows (the
# 30-day window lies inside it); visits count only appointments with a client, as before's join does.
_APPOINTMENT_METRICS = """
appointment_metrics AS (
    SELECT COALESCE(SUM(duration_minutes) FILTER (WHERE start_time >= :since_30d), 0)
               AS total_minutes,
           COUNT(*) FILTER (WHERE start_time >= :since_30d) AS completed_appointments,
           COUNT(DISTINCT client_id) AS year_clients, COUNT(client_id) AS year_visits
    FROM appointments
    WHERE user_id = :user_id AND status = 'completed'
      AND start_time >= :since_365d AND start_time < :as_of
)"""

BARBER_DRIVEN_SQL = f"""
WITH mine AS (
    SELECT a.id, a.client_id FROM appointments a WHERE a.user_id = :user_id
), paid AS (
    SELECT m.client_id, p.amount, p.created_at
    FROM mine m CROSS JOIN LATERAL (
        SELECT amount, created_at FROM payments
        WHERE appointment_id = m.id AND status = 'completed' AND created_at < :as_of
        OFFSET 0
    ) p
), payment_metrics AS (
    SELECT COUNT(*) FILTER (WHERE created_at >= :since_30d) AS payment_count,
           COALESCE(SUM(amount) FILTER (WHERE created_at >= :since_30d), 0) AS total_revenue,
           COALESCE(AVG(amount), 0) AS avg_ticket
    FROM paid
), payment_clients AS (
    SELECT COUNT(DISTINCT client_id) AS unique_clients FROM paid WHERE created_at >= :since_30d
),{_APPOINTMENT_METRICS}{_TAIL}"""

# The 30-day payments carry their appointment ids; the clients are read from exactly those
# appointments (their user_id is the payer's by the invariant, and is checked anyway), so no other
# appointment of the barber is touched and no join is needed. The all-time average ticket reads only
# the amounts; the 30-day figures are not FILTERed out of that scan but come from their own range.
DENORMALIZED_SQL = f"""
WITH payment_metrics AS (
    SELECT COUNT(*) AS payment_count, COALESCE(SUM(p.amount), 0) AS total_revenue,
           ARRAY_AGG(p.appointment_id) AS appointment_ids
    FROM payments p
    WHERE p.user_id = :user_id AND p.status = 'completed'
      AND p.created_at >= :since_30d AND p.created_at < :as_of
), payment_clients AS (
    SELECT COUNT(DISTINCT a.client_id) AS unique_clients
    FROM appointments a
    WHERE a.user_id = :user_id
      AND a.id = ANY((SELECT pm.appointment_ids FROM payment_metrics pm)::integer[])
), ticket AS (
    SELECT COALESCE(AVG(p.amount), 0) AS avg_ticket
    FROM payments p
    WHERE p.user_id = :user_id AND p.status = 'completed' AND p.created_at < :as_of
),{_APPOINTMENT_METRICS}
SELECT pm.total_revenue, t.avg_ticket, pm.payment_count, pc.unique_clients,
       am.total_minutes, am.completed_appointments, am.year_clients, am.year_visits
FROM payment_metrics pm
CROSS JOIN payment_clients pc
CROSS JOIN ticket t
CROSS JOIN appointment_metrics am"""

# Payments that break denormalized's invariant: no appointment, or another user_id than it.
PAYER_VIOLATIONS_SQL = """
SELECT COUNT(*) FROM payments p LEFT JOIN appointments a ON a.id = p.appointment_id
WHERE a.id IS NULL OR a.user_id <> p.user_id"""
