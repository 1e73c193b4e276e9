//! `cluster`.
