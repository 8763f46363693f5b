//! Bar aggregation: time bars, tick bars and volume bars.
