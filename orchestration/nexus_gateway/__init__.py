"""The orchestration REST gateway (grows into the operators' dashboard backend)."""
