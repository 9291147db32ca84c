"""Orchestration: one-shot runs, the daemon task tree (later), and the demo."""
