"""Backtesting: run a strategy over bars and study the result (stats, trades, plot, report)."""
