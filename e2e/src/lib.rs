//! Multi-process test harness.
