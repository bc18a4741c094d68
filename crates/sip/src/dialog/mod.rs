//! SIP dialogs (RFC 3261 §12) and session timers (RFC 4028).
