"""Feedback: training runs and evaluations merged into the catalog, and difficulty re-profiled under them."""
