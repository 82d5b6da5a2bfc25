"""Observability, at the bottom of the house: structured logs and metric definitions.

Any layer may import these modules; they import nothing of chainworker. The processes
that serve the metrics (the worker's exporter, the API's /metrics route) live with them.
"""
