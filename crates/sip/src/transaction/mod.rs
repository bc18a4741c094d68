//! SIP transactions (RFC 3261 §17) as state machines with no I/O.
