"""Automated pruning: searchers that choose per-group channel ratios under a FLOPs or latency budget.

space.py (candidates, budgets, exact costs), latency_table.py (NetAdapt's per-layer lookup table), proxy.py (scoring
a candidate on the validation split), studies.py (Optuna storage, resuming, the trial trace), and one file per
searcher: netadapt.py, amc.py, evolution.py, eagleeye.py.
"""
