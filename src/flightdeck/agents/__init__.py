"""Agents (checklist phase 6 and 3.3): the tools an agent calls (:mod:`flightdeck.agents.tools`), its memory and
the loop that plans, calls tools and answers with citations."""
