"""The portfolio optimisation service: mean-variance, Black-Litterman, risk parity, HRP, CVaR."""
