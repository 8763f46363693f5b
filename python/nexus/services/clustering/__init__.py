"""The clustering service: instrument clusters, market regimes, drift detection."""
