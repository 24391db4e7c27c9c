"""Score estimators compared: accuracy, cost and learning (docs/estimators.md)."""
