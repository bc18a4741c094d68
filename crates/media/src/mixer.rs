//! The conference mixer kernel: every participant hears everyone else but never
//! themselves (N-1, "mix-minus"), computed as total-minus-own so a tick costs O(N),
//! not O(N²), in i32 and brought back to i16 by a soft limiter ([`soft_limit`]):
//! bit-exact below its knee, and above it a curve that bends toward full scale
//! without reaching it, so loud talkers together neither wrap round into a click
//! nor clip into flat-topped squares.
//!
//! Large rooms: only the K loudest unmuted talkers (a smoothed energy level above a
//! voice threshold) enter the mix. Each talker gets a personal frame (total minus own);
//! everyone else hears the same shared frame — the sum of the talkers — so the caller
//! encodes it once per codec instead of once per listener. With N ≤ K every unmuted
//! participant with audio is a talker and this is the plain N-1 mix.
//!
//! Rate: the mix is wideband, 20 ms at 16 kHz ([`MixFrame`], [`MIX_SAMPLES`]). A
//! wideband participant (G.722, Opus) writes its frame with [`Mixer::input_mut`]; a
//! narrowband one (G.711) writes its 8 kHz frame with [`Mixer::narrow_input_mut`] and
//! the mixer measures its level on that frame and upsamples it (half-band 2×,
//! [`Upsampler2`]) only if it is selected as a talker — the other few thousand
//! G.711 participants of a tick cost a level and a 19-sample history copy, not a
//! filter. (Keeping each slot's previous frame instead of the copy was measured
//! slower: twice the memory walked per tick.)
//!
//! Pure and allocation-free per tick: all frames are allocated by [`Mixer::new`].

use crate::FRAME_SAMPLES;
use crate::halfband::Upsampler2;

/// One 20 ms frame of 8 kHz samples (narrowband: G.711, prompts, tones).
pub type Frame = [i16; FRAME_SAMPLES];

/// The narrowband frame of silence.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];

/// Samples in one mix frame: 20 ms at [`crate::MIX_RATE`] (16 kHz).
pub const MIX_SAMPLES: usize = 2 * FRAME_SAMPLES;

/// One 20 ms frame of the 16 kHz mix.
pub type MixFrame = [i16; MIX_SAMPLES];

/// The mix frame of silence.
pub const MIX_SILENCE: MixFrame = [0; MIX_SAMPLES];

/// N-1 over all `sources`: `outputs[i] = soft_limit(Σ sources − sources[i])`, for
/// frames of any length `N`. Extra outputs (beyond `sources.len()`) are left alone.
/// Allocation-free.
pub fn mix_minus<const N: usize>(sources: &[[i16; N]], outputs: &mut [[i16; N]]) {
    let mut total = [0i32; N];
    for source in sources {
        accumulate(&mut total, source);
    }
    for (own, out) in sources.iter().zip(outputs.iter_mut()) {
        subtract_limit(&total, own, out);
    }
}

/// Where the limiter's knee starts: -2.5 dBFS. Speech at normal levels (peaks
/// around -10 dBFS) never reaches it, so a mix of normal talkers is bit-exact.
pub const LIMIT_KNEE: i32 = 24_576;

/// The knee and what lies above it, as the curve computes them: its asymptote is
/// `KNEE + HEADROOM`, 2^15, one above `i16::MAX`, which no sum reaches (below).
/// A power of two, so `HEADROOM²` and the curve's value at the knee are exact.
const KNEE: f32 = LIMIT_KNEE as f32;
const HEADROOM: f32 = 8192.0;
/// Sums are taken up to ±2^23 (256 full-scale talkers in phase), where f32 still
/// holds them exactly; the curve is then at 32760, so the cast never saturates.
const RANGE: f32 = 8_388_608.0;

/// One mixed sample (a sum in i32) as i16: itself up to [`LIMIT_KNEE`], above it
/// `knee + h − h²/(e + h)` (e the excess, h the headroom), a rational curve like
/// tanh whose slope is 1 at the knee (no corner to hear) and falls smoothly, so
/// any sum, however many full-scale talkers, stays below full scale and keeps its
/// shape's ups and downs instead of a flat top.
///
/// In f32 with selects and one division, never by zero. Below the knee the excess
/// is 0 and the sample comes back exact. Written as `h − h²/(e + h)` every step is
/// monotone under rounding, so the curve is too; the cast truncates toward zero.
/// No state: every output (shared, personal, a prompt over either) is limited the
/// same way, and a frame may take the curve or not (see `limit`) without a seam.
#[inline]
pub fn soft_limit(sum: i32) -> i16 {
    // Comparisons rather than `f32::max`/`min`, whose NaN rules cost a blend each;
    // nothing here is NaN (and `clamp`'s bounds are constants in order).
    let x = (sum as f32).clamp(-RANGE, RANGE);
    let magnitude = x.abs();
    let excess = if magnitude > KNEE {
        magnitude - KNEE
    } else {
        0.0
    };
    let base = if magnitude > KNEE { KNEE } else { magnitude };
    let bent = base + (HEADROOM - HEADROOM * HEADROOM / (excess + HEADROOM));
    bent.copysign(x) as i16
}

/// Adds `extra` to `pcm` through the [`soft_limit`]er (a prompt over the mix), for
/// frames of any one length.
pub fn add_limited<const N: usize>(pcm: &mut [i16; N], extra: &[i16; N]) {
    let mut sum = [0i32; N];
    for ((s, &p), &e) in sum.iter_mut().zip(pcm.iter()).zip(extra) {
        *s = i32::from(p) + i32::from(e);
    }
    limit(&sum, pcm);
}

/// A participant's place in a [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MixerSlot(usize);

/// What one participant hears after [`Mixer::mix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// A talker's personal frame: everyone selected except themselves.
    Own(&'a MixFrame),
    /// The shared frame of all selected talkers, the same for every listener.
    Shared(&'a MixFrame),
}

impl<'a> Heard<'a> {
    /// The samples.
    pub fn frame(self) -> &'a MixFrame {
        match self {
            Heard::Own(f) | Heard::Shared(f) => f,
        }
    }
}

/// A room's mixer over preallocated frames.
///
/// Per tick: [`Mixer::input_mut`] / [`Mixer::narrow_input_mut`] (or [`Mixer::push`] /
/// [`Mixer::push_narrow`]) for each participant whose audio arrived, then
/// [`Mixer::mix`], then [`Mixer::output`] for each participant.
#[derive(Debug, Clone)]
pub struct Mixer {
    slots: Vec<Slot>,
    /// Wideband inputs (and narrowband ones once upsampled for the mix).
    inputs: Vec<MixFrame>,
    /// Narrowband inputs, 8 kHz.
    narrow: Vec<Frame>,
    /// Each slot's 8 → 16 kHz history, kept whether or not it is mixed.
    upsamplers: Vec<Upsampler2>,
    /// (level, slot) selected this tick, loudest first; at most `max_talkers`.
    talkers: Vec<(u64, usize)>,
    talker_outputs: Vec<MixFrame>,
    shared: MixFrame,
    max_talkers: usize,
    voice_threshold: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    used: bool,
    muted: bool,
    has_input: bool,
    /// This tick's input is the narrowband frame.
    narrow: bool,
    /// Smoothed mean-square level (peak hold with a release), see `update_level`.
    level: u64,
    /// Index into `talker_outputs` when selected this tick.
    talker: Option<usize>,
}

/// Mean square of a frame at about -50 dBFS: below this a participant is not talking.
pub const DEFAULT_VOICE_THRESHOLD: u64 = 10_000;
/// Talkers mixed at once in a large room.
pub const DEFAULT_MAX_TALKERS: usize = 3;

impl Mixer {
    /// A mixer for up to `capacity` participants mixing at most `max_talkers` (≥ 1)
    /// at once. Allocates every frame now.
    pub fn new(capacity: usize, max_talkers: usize) -> Self {
        let max_talkers = max_talkers.max(1);
        Self {
            slots: vec![Slot::default(); capacity],
            inputs: vec![MIX_SILENCE; capacity],
            narrow: vec![SILENCE; capacity],
            upsamplers: vec![Upsampler2::default(); capacity],
            talkers: Vec::with_capacity(max_talkers),
            talker_outputs: vec![MIX_SILENCE; max_talkers],
            shared: MIX_SILENCE,
            max_talkers,
            voice_threshold: DEFAULT_VOICE_THRESHOLD,
        }
    }

    /// Changes the level (mean square) under which a participant of a large room is
    /// not considered talking.
    pub fn set_voice_threshold(&mut self, mean_square: u64) {
        self.voice_threshold = mean_square;
    }

    /// Takes a free slot, or `None` when the room is full.
    pub fn join(&mut self) -> Option<MixerSlot> {
        let index = self.slots.iter().position(|s| !s.used)?;
        self.slots[index] = Slot {
            used: true,
            ..Slot::default()
        };
        if let Some(up) = self.upsamplers.get_mut(index) {
            up.reset();
        }
        Some(MixerSlot(index))
    }

    /// Frees a slot.
    pub fn leave(&mut self, slot: MixerSlot) {
        if let Some(s) = self.slots.get_mut(slot.0) {
            *s = Slot::default();
        }
    }

    /// Participants in the room.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// True when nobody is in the room.
    pub fn is_empty(&self) -> bool {
        !self.slots.iter().any(|s| s.used)
    }

    /// True while a slot is free.
    pub fn has_room(&self) -> bool {
        self.slots.iter().any(|s| !s.used)
    }

    /// Mutes or unmutes: a muted participant is never mixed but still hears the room.
    pub fn set_muted(&mut self, slot: MixerSlot, muted: bool) {
        if let Some(s) = self.slots.get_mut(slot.0).filter(|s| s.used) {
            s.muted = muted;
        }
    }

    /// True when the participant is muted.
    pub fn is_muted(&self, slot: MixerSlot) -> bool {
        self.slots.get(slot.0).is_some_and(|s| s.muted)
    }

    /// True when the participant is talking: unmuted and its smoothed level above the
    /// voice threshold (the same test large rooms select talkers by).
    pub fn is_talking(&self, slot: MixerSlot) -> bool {
        self.slots
            .get(slot.0)
            .is_some_and(|s| s.used && !s.muted && s.level >= self.voice_threshold)
    }

    /// This tick's 16 kHz input frame of `slot`, to decode into; marks it as received.
    pub fn input_mut(&mut self, slot: MixerSlot) -> Option<&mut MixFrame> {
        let s = self.slots.get_mut(slot.0).filter(|s| s.used)?;
        s.has_input = true;
        s.narrow = false;
        self.inputs.get_mut(slot.0)
    }

    /// This tick's 8 kHz input frame of `slot`, to decode into; marks it as received.
    /// It is upsampled only if mixed.
    pub fn narrow_input_mut(&mut self, slot: MixerSlot) -> Option<&mut Frame> {
        let s = self.slots.get_mut(slot.0).filter(|s| s.used)?;
        s.has_input = true;
        s.narrow = true;
        self.narrow.get_mut(slot.0)
    }

    /// Copies `pcm` (16 kHz, up to one frame, padded with silence) as this tick's input.
    pub fn push(&mut self, slot: MixerSlot, pcm: &[i16]) -> bool {
        let Some(frame) = self.input_mut(slot) else {
            return false;
        };
        copy_padded(pcm, frame);
        true
    }

    /// Copies `pcm` (8 kHz, up to one frame, padded with silence) as this tick's input.
    pub fn push_narrow(&mut self, slot: MixerSlot, pcm: &[i16]) -> bool {
        let Some(frame) = self.narrow_input_mut(slot) else {
            return false;
        };
        copy_padded(pcm, frame);
        true
    }

    /// Mixes this tick's inputs. Participants without input this tick (or muted) are
    /// left out. Inputs are consumed: the next tick starts with none.
    pub fn mix(&mut self) {
        let candidates = self
            .slots
            .iter()
            .filter(|s| s.used && s.has_input && !s.muted)
            .count();
        // Small rooms mix every unmuted participant; large ones gate on voice level.
        let gate = candidates > self.max_talkers;

        self.talkers.clear();
        for (index, ((slot, input), narrow)) in self
            .slots
            .iter_mut()
            .zip(&self.inputs)
            .zip(&self.narrow)
            .enumerate()
        {
            slot.talker = None;
            if !slot.used {
                continue;
            }
            let speaking = slot.has_input && !slot.muted;
            let energy = match (speaking, slot.narrow) {
                (false, _) => 0,
                (true, true) => mean_square(narrow),
                (true, false) => mean_square(input),
            };
            slot.level = update_level(slot.level, energy);
            if speaking && !(gate && slot.level < self.voice_threshold) {
                insert_loudest(&mut self.talkers, self.max_talkers, slot.level, index);
            }
        }

        // Narrowband inputs: the talkers' are upsampled into the mix; everyone else's
        // only moves its converter's history on.
        for (index, ((slot, up), narrow)) in self
            .slots
            .iter_mut()
            .zip(&mut self.upsamplers)
            .zip(&self.narrow)
            .enumerate()
        {
            if !(slot.used && slot.has_input && slot.narrow) {
                continue;
            }
            if self.talkers.iter().any(|&(_, t)| t == index)
                && let Some(input) = self.inputs.get_mut(index)
            {
                up.process(narrow, input);
            } else {
                up.push(narrow);
            }
        }

        let mut total = [0i32; MIX_SAMPLES];
        for &(_, t) in &self.talkers {
            if let Some(input) = self.inputs.get(t) {
                accumulate(&mut total, input);
            }
        }
        limit(&total, &mut self.shared);
        for (rank, &(_, t)) in self.talkers.iter().enumerate() {
            if let (Some(input), Some(out)) =
                (self.inputs.get(t), self.talker_outputs.get_mut(rank))
            {
                subtract_limit(&total, input, out);
            }
            if let Some(slot) = self.slots.get_mut(t) {
                slot.talker = Some(rank);
            }
        }
        for slot in &mut self.slots {
            slot.has_input = false;
        }
    }

    /// What `slot` hears from the last [`Mixer::mix`].
    pub fn output(&self, slot: MixerSlot) -> Option<Heard<'_>> {
        let s = self.slots.get(slot.0).filter(|s| s.used)?;
        Some(
            match s.talker.and_then(|rank| self.talker_outputs.get(rank)) {
                Some(own) => Heard::Own(own),
                None => Heard::Shared(&self.shared),
            },
        )
    }

    /// The shared frame of the last mix (what every non-talker hears).
    pub fn shared(&self) -> &MixFrame {
        &self.shared
    }

    /// The slots mixed in the last tick, loudest first.
    pub fn talkers(&self) -> impl ExactSizeIterator<Item = MixerSlot> + '_ {
        self.talkers.iter().map(|&(_, i)| MixerSlot(i))
    }
}

/// Keeps `talkers` the `k` loudest (level, slot) pairs, loudest first; ties keep the
/// earlier slot. O(k) per call, no allocation (capacity k reserved up front).
fn insert_loudest(talkers: &mut Vec<(u64, usize)>, k: usize, level: u64, index: usize) {
    let position = talkers
        .iter()
        .position(|&(l, _)| level > l)
        .unwrap_or(talkers.len());
    if position >= k {
        return;
    }
    if talkers.len() == k {
        talkers.pop();
    }
    talkers.insert(position, (level, index));
}

/// Peak-hold level with a release of 1/8 per tick (about 150 ms to fall 20 dB), so a
/// talker's selection does not flap between syllables.
fn update_level(level: u64, energy: u64) -> u64 {
    energy.max(level - level / 8)
}

/// Mean square of a frame (0..=2^30), whatever its rate.
fn mean_square<const N: usize>(frame: &[i16; N]) -> u64 {
    let sum: u64 = frame
        .iter()
        .map(|&s| (i64::from(s) * i64::from(s)) as u64)
        .sum();
    sum / N.max(1) as u64
}

/// Copies up to `frame.len()` samples of `pcm` and pads with silence.
fn copy_padded(pcm: &[i16], frame: &mut [i16]) {
    let n = pcm.len().min(frame.len());
    frame[..n].copy_from_slice(&pcm[..n]);
    frame[n..].fill(0);
}

#[inline]
fn accumulate<const N: usize>(total: &mut [i32; N], frame: &[i16; N]) {
    for (t, &s) in total.iter_mut().zip(frame) {
        *t += i32::from(s);
    }
}

/// `total` through the [`soft_limit`]er into `out`. The first pass is the plain
/// saturating narrowing, which compiles to packing instructions, and a check on
/// its result; only a frame that went above the knee (its talkers loud together)
/// is done again through the curve, so the mix of normal talkers costs what it did
/// before the limiter.
#[inline]
fn limit<const N: usize>(total: &[i32; N], out: &mut [i16; N]) {
    for (o, &t) in out.iter_mut().zip(total) {
        *o = t.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
    if above_knee(out) {
        for (o, &t) in out.iter_mut().zip(total) {
            *o = soft_limit(t);
        }
    }
}

/// `total − own` through the [`soft_limit`]er into `out` (a talker's N-1), as [`limit`].
#[inline]
fn subtract_limit<const N: usize>(total: &[i32; N], own: &[i16; N], out: &mut [i16; N]) {
    for ((o, &t), &s) in out.iter_mut().zip(total).zip(own) {
        *o = (t - i32::from(s)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
    if above_knee(out) {
        for ((o, &t), &s) in out.iter_mut().zip(total).zip(own) {
            *o = soft_limit(t - i32::from(s));
        }
    }
}

/// True when a saturated frame has a sample beyond the knee (then so had its sum).
/// Max and min over i16 lanes: a few instructions per eight samples.
#[inline]
fn above_knee(frame: &[i16]) -> bool {
    let (lo, hi) = frame
        .iter()
        .fold((0i16, 0i16), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    // LIMIT_KNEE fits in i16.
    let knee = LIMIT_KNEE as i16;
    hi > knee || lo < -knee
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(v: i16) -> MixFrame {
        [v; MIX_SAMPLES]
    }

    #[test]
    fn kernel_is_n_minus_one() {
        let sources = [dc(1), dc(10), dc(100), dc(1000)];
        let mut out = [MIX_SILENCE; 4];
        mix_minus(&sources, &mut out);
        assert_eq!(out[0], dc(1110));
        assert_eq!(out[1], dc(1101));
        assert_eq!(out[2], dc(1011));
        assert_eq!(out[3], dc(111));
    }

    #[test]
    fn kernel_limits_instead_of_wrapping() {
        let sources = [dc(i16::MAX), dc(i16::MAX), dc(i16::MAX)];
        let mut out = [MIX_SILENCE; 3];
        mix_minus(&sources, &mut out);
        // 2 × 32767 bends to 24576 + 8192 − 8192²/(40958 + 8192).
        assert!(out.iter().all(|f| *f == dc(31_402)));
        let sources = [dc(i16::MIN), dc(i16::MIN), dc(i16::MIN)];
        mix_minus(&sources, &mut out);
        assert!(out.iter().all(|f| *f == dc(soft_limit(-65_536))));
    }

    #[test]
    fn soft_limit_is_exact_below_the_knee_and_bends_smoothly_above() {
        for sum in -LIMIT_KNEE..=LIMIT_KNEE {
            assert_eq!(i32::from(soft_limit(sum)), sum);
        }
        let mut previous = soft_limit(-40_000_000);
        for sum in (-40_000_000..40_000_000).step_by(997) {
            let out = soft_limit(sum);
            assert!(out >= previous, "monotone at {sum}");
            assert!(
                out.unsigned_abs() < i16::MAX as u16,
                "below full scale at {sum}"
            );
            assert_eq!(soft_limit(-sum), -out, "symmetric at {sum}");
            previous = out;
        }
        // Just above the knee the slope is still 1, to within the rounding.
        for sum in LIMIT_KNEE..LIMIT_KNEE + 64 {
            assert!((i32::from(soft_limit(sum)) - sum).abs() <= 1, "{sum}");
        }
    }

    /// A sine at 16 kHz, `amplitude` peak, 440 Hz (not a divisor of the frame, so
    /// each frame starts at another phase).
    fn sine(amplitude: f64, frame: usize) -> MixFrame {
        let mut f = MIX_SILENCE;
        for (i, s) in f.iter_mut().enumerate() {
            let t = (frame * MIX_SAMPLES + i) as f64 / 16_000.0;
            *s = (amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16;
        }
        f
    }

    /// The longest run of one value repeated in `frames`.
    fn longest_run(frames: &[MixFrame]) -> usize {
        let samples: Vec<i16> = frames.iter().flatten().copied().collect();
        samples
            .chunk_by(|a, b| a == b)
            .map(<[i16]>::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn many_full_scale_talkers_neither_wrap_nor_flat_top() {
        // Twenty talkers, the same full-scale sine in phase: the worst sum there is.
        let mut kernel_out = Vec::new();
        let mut room_out = Vec::new();
        let mut m = Mixer::new(20, 20);
        let slots: Vec<_> = (0..20).map(|_| m.join().unwrap()).collect();
        for frame in 0..10 {
            let loud = sine(f64::from(i16::MAX), frame);
            let sources = [loud; 20];
            let mut out = [MIX_SILENCE; 20];
            mix_minus(&sources, &mut out);
            kernel_out.push(out[0]);
            for &s in &slots {
                m.push(s, &loud);
            }
            m.mix();
            room_out.push(*m.output(slots[3]).unwrap().frame());
            // No wrap: every output has the sign of the sum it stands for.
            for (o, s) in out[0].iter().zip(&loud) {
                assert!(i32::from(*o) * i32::from(*s) >= 0, "{o} for {s}");
            }
        }
        for (name, frames) in [("kernel", &kernel_out), ("room", &room_out)] {
            let peak = frames.iter().flatten().map(|s| s.unsigned_abs()).max();
            assert!(peak < Some(i16::MAX as u16), "{name}: peak {peak:?}");
            assert!(peak > Some(30_000), "{name}: still loud, {peak:?}");
            // Hard clipping holds full scale for ~30 samples of each 36-sample half
            // cycle; the curve keeps the crests moving.
            let run = longest_run(frames);
            assert!(run <= 4, "{name}: {run} samples in a row at one value");
        }
    }

    #[test]
    fn a_talker_at_a_normal_level_passes_bit_exact() {
        // -10 dBFS, and two of them together (peaks at -4 dBFS): below the knee.
        let mut m = Mixer::new(4, 3);
        let a = m.join().unwrap();
        let b = m.join().unwrap();
        let c = m.join().unwrap();
        for frame in 0..5 {
            let voice = sine(10_362.0, frame);
            m.push(a, &voice);
            m.push(b, &voice);
            m.push(c, &MIX_SILENCE);
            m.mix();
            assert_eq!(m.output(b).unwrap().frame(), &voice, "b hears a alone");
            let mut both = voice;
            for s in &mut both {
                *s *= 2;
            }
            assert_eq!(m.output(c).unwrap().frame(), &both, "c hears both, exactly");
        }
        let mut pcm = sine(10_362.0, 0);
        add_limited(&mut pcm, &sine(5_000.0, 0));
        for (i, p) in pcm.iter().enumerate() {
            let want = i32::from(sine(10_362.0, 0)[i]) + i32::from(sine(5_000.0, 0)[i]);
            assert_eq!(i32::from(*p), want);
        }
    }

    #[test]
    fn small_room_is_n_minus_one_and_never_hears_itself() {
        let mut m = Mixer::new(8, 3);
        let a = m.join().unwrap();
        let b = m.join().unwrap();
        let c = m.join().unwrap();
        // Quiet inputs: a small room is not gated by the voice threshold.
        m.push(a, &dc(1));
        m.push(b, &dc(2));
        m.push(c, &dc(4));
        m.mix();
        assert_eq!(m.output(a), Some(Heard::Own(&dc(6))));
        assert_eq!(m.output(b), Some(Heard::Own(&dc(5))));
        assert_eq!(m.output(c), Some(Heard::Own(&dc(3))));
    }

    #[test]
    fn muted_and_silent_participants_are_not_mixed_but_hear() {
        let mut m = Mixer::new(8, 3);
        let a = m.join().unwrap();
        let b = m.join().unwrap();
        let c = m.join().unwrap();
        m.set_muted(b, true);
        assert!(m.is_muted(b));
        m.push(a, &dc(100));
        m.push(b, &dc(30_000));
        // c sent nothing this tick.
        m.mix();
        assert_eq!(m.output(a), Some(Heard::Own(&MIX_SILENCE)));
        assert_eq!(m.output(b), Some(Heard::Shared(&dc(100))));
        assert_eq!(m.output(c), Some(Heard::Shared(&dc(100))));
        // Inputs are consumed by mix().
        m.mix();
        assert_eq!(m.output(c).map(Heard::frame), Some(&MIX_SILENCE));
    }

    #[test]
    fn full_scale_is_limited_in_the_room() {
        let mut m = Mixer::new(4, 4);
        let slots: Vec<_> = (0..4).map(|_| m.join().unwrap()).collect();
        for &s in &slots {
            m.push(s, &dc(i16::MIN));
        }
        m.mix();
        for &s in &slots {
            // 3 × -32768 bends to -(24576 + 8192 − 8192²/(73728 + 8192)).
            assert_eq!(m.output(s).map(Heard::frame), Some(&dc(-31_948)));
        }
        let mut pcm = dc(30_000);
        add_limited(&mut pcm, &dc(30_000));
        assert_eq!(pcm, dc(soft_limit(60_000)));
    }

    #[test]
    fn large_room_mixes_the_k_loudest_and_shares_one_frame() {
        let mut m = Mixer::new(100, 3);
        let slots: Vec<_> = (0..50).map(|_| m.join().unwrap()).collect();
        // Everyone sends; slots 7, 20 and 33 are loud, 41 is loud-ish, the rest hiss.
        for (i, &s) in slots.iter().enumerate() {
            let v = match i {
                7 => 8000,
                20 => 6000,
                33 => 4000,
                41 => 2000,
                _ => 20,
            };
            m.push(s, &dc(v));
        }
        m.mix();
        let talkers: Vec<_> = m.talkers().collect();
        assert_eq!(talkers, vec![slots[7], slots[20], slots[33]]);
        assert_eq!(m.output(slots[7]), Some(Heard::Own(&dc(10_000))));
        assert_eq!(m.output(slots[20]), Some(Heard::Own(&dc(12_000))));
        assert_eq!(m.output(slots[33]), Some(Heard::Own(&dc(14_000))));
        for &s in slots.iter().filter(|s| !talkers.contains(s)) {
            assert_eq!(m.output(s), Some(Heard::Shared(&dc(18_000))));
        }
        assert_eq!(m.shared(), &dc(18_000));
    }

    #[test]
    fn quiet_rooms_mix_nobody_and_levels_decay() {
        let mut m = Mixer::new(10, 2);
        let slots: Vec<_> = (0..5).map(|_| m.join().unwrap()).collect();
        for &s in &slots {
            m.push(s, &dc(10)); // mean square 100, below the threshold
        }
        m.mix();
        assert_eq!(m.talkers().len(), 0);
        assert_eq!(m.shared(), &MIX_SILENCE);

        // A talker stops: its held level keeps it selected briefly, then it drops out.
        m.push(slots[0], &dc(5000));
        m.push(slots[1], &dc(4000));
        m.push(slots[2], &dc(10));
        m.mix();
        assert_eq!(m.talkers().collect::<Vec<_>>(), vec![slots[0], slots[1]]);
        let mut ticks = 0;
        loop {
            m.push(slots[0], &MIX_SILENCE);
            m.push(slots[1], &dc(4000));
            m.push(slots[2], &dc(3000));
            m.mix();
            ticks += 1;
            if m.talkers().collect::<Vec<_>>() == vec![slots[1], slots[2]] {
                break;
            }
            assert!(ticks < 10, "the silent talker was never released");
        }
        assert!(ticks > 1, "no hangover: selection flaps");
    }

    #[test]
    fn narrowband_inputs_join_the_wideband_mix_and_keep_n_minus_one() {
        let mut m = Mixer::new(4, 3);
        let a = m.join().unwrap(); // G.711
        let b = m.join().unwrap(); // wideband
        for _ in 0..3 {
            m.push_narrow(a, &[1000; FRAME_SAMPLES]);
            m.push(b, &dc(20));
            m.mix();
        }
        // DC passes the half-band interpolator at unity gain once its history is full.
        assert_eq!(m.output(b), Some(Heard::Own(&dc(1000))));
        assert_eq!(m.output(a), Some(Heard::Own(&dc(20))));
    }

    #[test]
    fn narrowband_inputs_are_upsampled_only_when_mixed() {
        let mut m = Mixer::new(8, 1);
        let loud = m.join().unwrap();
        let quiet = m.join().unwrap();
        let listener = m.join().unwrap();
        for _ in 0..3 {
            m.push_narrow(loud, &[3000; FRAME_SAMPLES]);
            m.push_narrow(quiet, &[5; FRAME_SAMPLES]);
            m.push(listener, &dc(7));
            m.mix();
        }
        assert_eq!(m.talkers().collect::<Vec<_>>(), vec![loud]);
        assert_eq!(m.output(listener), Some(Heard::Shared(&dc(3000))));
        assert_eq!(m.output(loud), Some(Heard::Own(&MIX_SILENCE)));
        // The quiet one was never upsampled, but its history was kept: when it is
        // mixed, its first frame joins without a seam (DC stays DC).
        m.set_muted(loud, true);
        m.push_narrow(quiet, &[5; FRAME_SAMPLES]);
        m.mix();
        assert_eq!(m.output(listener), Some(Heard::Shared(&dc(5))));
    }

    #[test]
    fn join_leave_and_capacity() {
        let mut m = Mixer::new(2, 1);
        let a = m.join().unwrap();
        let b = m.join().unwrap();
        assert!(m.join().is_none());
        assert_eq!(m.len(), 2);
        m.leave(a);
        assert_eq!(m.len(), 1);
        assert!(m.output(a).is_none());
        assert!(!m.push(a, &dc(1)));
        assert!(m.push(b, &dc(1)));
        let c = m.join().unwrap();
        assert_eq!(c, a);
        m.leave(b);
        m.leave(c);
        assert!(m.is_empty());
    }

    proptest::proptest! {
        /// The kernel equals the naive definition: the limited sum of everyone else.
        #[test]
        fn kernel_matches_naive_sum(values in proptest::collection::vec(proptest::prelude::any::<i16>(), 1..12)) {
            let sources: Vec<MixFrame> = values.iter().map(|&v| dc(v)).collect();
            let mut out = vec![MIX_SILENCE; sources.len()];
            mix_minus(&sources, &mut out);
            for (i, frame) in out.iter().enumerate() {
                let others: i32 = values.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &v)| i32::from(v)).sum();
                let expected = soft_limit(others);
                proptest::prop_assert_eq!(frame, &dc(expected));
            }
        }
    }
}
