//! State shared between bridge nodes: `[shared]` and the backends it names.

pub mod config;
