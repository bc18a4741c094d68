//! The `dialbridge` binary.

fn main() {}
