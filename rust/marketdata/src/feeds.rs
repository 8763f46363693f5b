//! Parsers of recorded exchange feeds (Binance depth, trades and book tickers; Bybit order-book deltas).
