"""Feature engines: how a run's as-of features are computed (the *what* is :mod:`trailsight.pipeline`).

:mod:`trailsight.engines.base` is the protocol (:class:`~trailsight.engines.base.FeatureEngine`);
:mod:`trailsight.engines.local` the default engine (DuckDB and numpy on this machine, with its
worker processes in :mod:`trailsight.engines.local_workers`); :mod:`trailsight.engines.spark`
runs the same feature expressions on Apache Spark (optional extra ``spark``), reading the lake
or raw CloudTrail (:mod:`trailsight.engines.spark_cloudtrail`).
"""
