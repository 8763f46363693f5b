"""The risk service: VaR and expected shortfall, stress tests, limits, the circuit breaker."""
