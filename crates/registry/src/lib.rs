//! berth-registry: work in progress.
