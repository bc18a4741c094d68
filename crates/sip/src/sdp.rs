//! SDP offer/answer (RFC 3264) for G.711 and telephone-event.
