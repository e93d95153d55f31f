"""Evaluation tools of checklist 4.2: flightdeck's sets and answers in other evaluation frameworks' formats."""
