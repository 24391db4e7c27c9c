"""Baseline agents with the same init / update / act interface as DQS."""
