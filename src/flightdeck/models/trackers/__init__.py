"""Experiment tracking (checklist 3.4): the built-in runs table, and the trackers a spec adds beside it."""
