"""DMC sweeps: the paper's tables (reproduce, report, re-evaluation)."""
