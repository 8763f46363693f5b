//! Readers of QuantConnect Lean data files (zipped CSV ticks, trades and bars).
