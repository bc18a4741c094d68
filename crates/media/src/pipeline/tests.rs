//! Tests of the room pipeline with a virtual clock.
