"""The orchestration hub service: system status, strategy runs, audit, the global halt."""
