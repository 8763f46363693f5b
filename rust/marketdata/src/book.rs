//! L2 order books: snapshots, incremental updates, top-of-book figures and sequence-gap detection.
