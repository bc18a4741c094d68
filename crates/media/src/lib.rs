//! dialbridge media: RTP/RTCP, codecs, jitter buffer, the N-1 mixer kernel, prompts,
//! tones and recording. Sockets and the clocked tick task live behind `tokio`.
