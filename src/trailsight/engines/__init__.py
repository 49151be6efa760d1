"""Engines that run the feature expressions besides the default in-process DuckDB.

:mod:`trailsight.engines.spark` runs them on Apache Spark (optional extra ``spark``).
"""
