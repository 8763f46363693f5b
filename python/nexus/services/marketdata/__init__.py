"""The market-data service: ticks, bars, order books and feed health over the Rust engine."""
