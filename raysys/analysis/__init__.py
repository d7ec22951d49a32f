"""Sweep analysis: transfer matrix, leaderboard with CIs, scaling-law fits, plots and report."""
