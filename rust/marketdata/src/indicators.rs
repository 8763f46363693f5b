//! Technical indicators, streaming one value at a time and over whole arrays.
