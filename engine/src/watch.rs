//! Watching graph files (being built).
