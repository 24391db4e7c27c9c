"""Benchmarks that print figures: update cost, estimator cost, seeds throughput."""
