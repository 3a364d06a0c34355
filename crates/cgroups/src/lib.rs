//! berth-cgroups: work in progress.
