//! dialbridge conferences: DTMF from every source, the entry IVR, rooms and the
//! organiser directory.
