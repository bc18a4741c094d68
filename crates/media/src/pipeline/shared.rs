//! The mix every listener who is not a talker hears, shared by the room's members for one
//! tick: decimated to 8 kHz at most once and encoded at most once per G.711 codec, so a
//! thousand listeners cost one conversion, not a thousand.

use crate::Codec;
use crate::FRAME_SAMPLES;
use crate::halfband::Downsampler2;
use crate::mixer::{Frame, MixFrame, SILENCE};

/// The shared mix of one tick: decimated to 8 kHz at most once and encoded at most
/// once per G.711 codec.
#[derive(Debug)]
pub(crate) struct SharedCache<'a> {
    wide: &'a MixFrame,
    down: &'a mut Downsampler2,
    narrow: Option<Frame>,
    pcmu: Option<[u8; FRAME_SAMPLES]>,
    pcma: Option<[u8; FRAME_SAMPLES]>,
}

impl<'a> SharedCache<'a> {
    pub(super) fn new(wide: &'a MixFrame, down: &'a mut Downsampler2) -> Self {
        Self {
            wide,
            down,
            narrow: None,
            pcmu: None,
            pcma: None,
        }
    }

    /// The shared mix at 16 kHz.
    pub(crate) fn wide(&self) -> &'a MixFrame {
        self.wide
    }

    /// The shared mix at 8 kHz.
    pub(crate) fn narrow(&mut self) -> &Frame {
        let Self {
            wide, down, narrow, ..
        } = self;
        narrow.get_or_insert_with(|| decimate(down, wide))
    }

    /// The shared mix encoded in `codec`.
    pub(crate) fn encoded(&mut self, codec: Codec) -> &[u8; FRAME_SAMPLES] {
        let Self {
            wide,
            down,
            narrow,
            pcmu,
            pcma,
        } = self;
        let entry = match codec {
            Codec::Pcmu => pcmu,
            Codec::Pcma => pcma,
        };
        entry.get_or_insert_with(|| {
            let pcm = narrow.get_or_insert_with(|| decimate(down, wide));
            let mut bytes = [0u8; FRAME_SAMPLES];
            codec.encode_frame(pcm, &mut bytes);
            bytes
        })
    }

    /// Keeps the converter's history whole when nobody needed the 8 kHz mix.
    pub(super) fn finish(self) {
        if self.narrow.is_none() {
            self.down.push(self.wide);
        }
    }
}

/// `wide` at 8 kHz.
fn decimate(down: &mut Downsampler2, wide: &MixFrame) -> Frame {
    let mut pcm = SILENCE;
    down.process(wide, &mut pcm);
    pcm
}
