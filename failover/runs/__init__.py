"""Runs: failover, failback, switch and migrate as journaled runs of ordered steps.

model.py (types, a leaf) and plan.py (plan_run, decide: pure) decide; journal.py keeps the
runs tables; engine.py executes and resumes; auto.py is what the agent runs after rounds;
steps/ holds the step implementations and catalog.py names them.
"""
