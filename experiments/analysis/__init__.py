"""Incentive analysis of mechanism configurations: deviation and coalition gains, empirical meta-games, costs,
the analytic inspection-game baseline, plots and the report. Entry points: experiments.analyze, .search, .quickstart.
"""
