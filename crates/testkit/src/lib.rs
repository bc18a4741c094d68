//! Test-only helpers shared by dialbridge's test suites: a simulated clock, a sipp
//! runner, audio checks.
