"""The execution service: orders, execution reports, positions, algos and the kill switch."""
