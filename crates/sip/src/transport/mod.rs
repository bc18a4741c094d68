//! UDP, TCP and TLS transports (RFC 3261 §18, RFC 3581).
