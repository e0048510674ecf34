"""Sharding on PostgreSQL's own postgres_fdw: shard servers beside the embedded coordinator
(``servers``), appointments and payments as hash partitions over foreign tables on them (``layout``),
what routing, fan-out, pushdown and cross-shard commits cost (``effects``), and what notebook 10
concludes (``shardstory``)."""
