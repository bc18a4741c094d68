//! Comfort noise, RFC 3389: the payload (static payload type 13, "CN/8000") a peer sends
//! instead of silence, and a generator that fills the gaps with noise at its level and,
//! when the payload carries them, its spectral shape.
//!
//! The payload (§3) is one octet of noise level in -dBov (0..=127, §3.1; 0 dBov is a
//! full-scale square wave, so an RMS of 32767 on the 16-bit scale) followed by zero or
//! more quantized reflection coefficients of an all-pole model (§3.2): octet q stands for
//! k = (q - 127) / 128. The generator excites the all-pole filter with white noise scaled
//! by the model's prediction gain, so the level is right whatever the shape. A decoder
//! may use fewer coefficients than sent (§3): we keep at most [`MAX_ORDER`].

/// RTP payload type of comfort noise (RFC 3551 §6, RFC 3389 §4).
pub const CN_PAYLOAD_TYPE: u8 = 13;
/// Reflection coefficients we use at most; the rest of a longer payload is ignored.
pub const MAX_ORDER: usize = 10;
/// The quietest level, -dBov: at or below it the noise is (near) digital silence.
pub const QUIETEST_DBOV: u8 = 127;

/// RMS of a 0 dBov signal on the 16-bit scale.
const FULL_SCALE: f32 = 32_767.0;
/// |k| is kept below 1 so that the all-pole filter stays stable (q = 255 would be 1.0).
const MAX_REFLECTION: f32 = 0.99;

/// One parsed comfort-noise payload (a "SID frame").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComfortNoise {
    level: u8,
    order: usize,
    reflection: [f32; MAX_ORDER],
}

impl ComfortNoise {
    /// Parses a CN payload. `None` for an empty payload (there is no level to use). The
    /// reserved top bit of the level octet is ignored (§3.1).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let (&level, spectrum) = payload.split_first()?;
        let mut reflection = [0.0; MAX_ORDER];
        let order = spectrum.len().min(MAX_ORDER);
        for (k, &q) in reflection.iter_mut().zip(spectrum) {
            *k = ((f32::from(q) - 127.0) / 128.0).clamp(-MAX_REFLECTION, MAX_REFLECTION);
        }
        Some(Self {
            level: level & 0x7F,
            order,
            reflection,
        })
    }

    /// White noise at `level` -dBov (clamped to 0..=127), no spectral information.
    pub fn white(level: u8) -> Self {
        Self {
            level: level.min(QUIETEST_DBOV),
            order: 0,
            reflection: [0.0; MAX_ORDER],
        }
    }

    /// The level a frame of PCM would be sent at: its RMS in -dBov, rounded.
    pub fn measure(pcm: &[i16]) -> Self {
        let energy: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
        let rms = (energy / pcm.len().max(1) as f64).sqrt();
        let dbov = if rms < 1e-3 {
            f64::from(QUIETEST_DBOV)
        } else {
            -20.0 * (rms / f64::from(FULL_SCALE)).log10()
        };
        Self::white(dbov.round().clamp(0.0, f64::from(QUIETEST_DBOV)) as u8)
    }

    /// Noise level, -dBov (0 = full scale, 127 = quietest).
    pub fn level_dbov(&self) -> u8 {
        self.level
    }

    /// The reflection coefficients in use (at most [`MAX_ORDER`]).
    pub fn reflection(&self) -> &[f32] {
        &self.reflection[..self.order]
    }

    /// Writes the payload (level, then the quantized reflection coefficients) into `out`
    /// and returns its length, or `None` if `out` is too short.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let len = 1 + self.order;
        let out = out.get_mut(..len)?;
        out[0] = self.level;
        for (o, &k) in out[1..].iter_mut().zip(self.reflection()) {
            *o = (k * 128.0 + 127.0).round().clamp(0.0, 254.0) as u8;
        }
        Some(len)
    }

    /// The RMS the level stands for, on the 16-bit scale.
    pub fn rms(&self) -> f32 {
        FULL_SCALE * 10f32.powf(-f32::from(self.level) / 20.0)
    }
}

/// A comfort noise generator: set it from each SID frame, then pull frames from it for
/// as long as the peer stays silent. Allocation-free.
#[derive(Debug, Clone)]
pub struct NoiseGenerator {
    /// xorshift32 state (never 0).
    seed: u32,
    /// Direct-form predictor a[1..=order] of A(z) = 1 + Σ a_i z^-i.
    lpc: [f32; MAX_ORDER],
    order: usize,
    /// Past outputs y[n-1], y[n-2], ... of the synthesis filter 1/A(z).
    memory: [f32; MAX_ORDER],
    /// Excitation scale: uniform noise in ±gain has the wanted prediction error power.
    gain: f32,
}

impl NoiseGenerator {
    /// A generator producing silence until [`Self::set`] is called. `seed` makes runs
    /// reproducible; any value works.
    pub fn new(seed: u32) -> Self {
        Self {
            seed: seed | 1,
            lpc: [0.0; MAX_ORDER],
            order: 0,
            memory: [0.0; MAX_ORDER],
            gain: 0.0,
        }
    }

    /// Adopts the level and shape of a SID frame.
    pub fn set(&mut self, cn: &ComfortNoise) {
        // Step-up recursion (reflection → direct form), in place on a copy.
        let mut a = [0.0f32; MAX_ORDER];
        let mut previous = [0.0f32; MAX_ORDER];
        let mut prediction_gain = 1.0f32;
        for (m, &k) in cn.reflection().iter().enumerate() {
            previous[..m].copy_from_slice(&a[..m]);
            for i in 0..m {
                a[i] = previous[i] + k * previous[m - 1 - i];
            }
            a[m] = k;
            prediction_gain *= 1.0 - k * k;
        }
        self.lpc = a;
        self.order = cn.reflection().len();
        // The all-pole filter multiplies white noise power by 1 / Π(1 - k²); uniform
        // noise in ±g has power g²/3.
        self.gain = cn.rms() * (3.0 * prediction_gain).sqrt();
        if cn.level_dbov() >= QUIETEST_DBOV {
            self.gain = 0.0;
        }
    }

    /// Fills `out` with comfort noise.
    pub fn fill(&mut self, out: &mut [i16]) {
        let order = self.order;
        for o in out.iter_mut() {
            let e = self.uniform() * self.gain;
            let feedback: f32 = self.lpc[..order]
                .iter()
                .zip(&self.memory[..order])
                .map(|(a, y)| a * y)
                .sum();
            let y = e - feedback;
            if order > 0 {
                self.memory.copy_within(..order - 1, 1);
                self.memory[0] = y;
            }
            *o = y.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        }
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        (x as f32 / 2_147_483_648.0) - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f32 {
        (x.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn parse_level_and_coefficients() {
        assert_eq!(ComfortNoise::parse(&[]), None);
        let cn = ComfortNoise::parse(&[0x80 | 40, 127, 255, 0]).unwrap();
        assert_eq!(cn.level_dbov(), 40);
        assert_eq!(cn.reflection(), &[0.0, MAX_REFLECTION, -MAX_REFLECTION]);
        let long = [60u8; 1 + 20];
        assert_eq!(
            ComfortNoise::parse(&long).unwrap().reflection().len(),
            MAX_ORDER
        );
    }

    #[test]
    fn write_parses_back() {
        let cn = ComfortNoise::parse(&[55, 100, 140, 127]).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(cn.write(&mut buf), Some(4));
        assert_eq!(&buf[..4], &[55, 100, 140, 127]);
        assert_eq!(cn.write(&mut [0u8; 3]), None);
    }

    #[test]
    fn generated_level_matches_the_payload() {
        for (payload, label) in [
            (&[30u8][..], "white"),
            (&[30u8, 127 - 100, 127 + 60][..], "shaped"),
        ] {
            let cn = ComfortNoise::parse(payload).unwrap();
            let mut g = NoiseGenerator::new(7);
            g.set(&cn);
            let mut out = vec![0i16; 8000];
            g.fill(&mut out);
            let db = 20.0 * (rms(&out[800..]) / cn.rms()).log10();
            assert!(db.abs() < 1.0, "{label}: {db:.2} dB off");
        }
    }

    #[test]
    fn measure_round_trips_the_level() {
        let mut g = NoiseGenerator::new(1);
        g.set(&ComfortNoise::white(45));
        let mut out = [0i16; 1600];
        g.fill(&mut out);
        let level = ComfortNoise::measure(&out).level_dbov();
        assert!(level.abs_diff(45) <= 1, "{level}");
        assert_eq!(ComfortNoise::measure(&[0; 160]).level_dbov(), 127);
    }

    /// A negative first reflection coefficient is a low-pass model (A(z) = 1 - 0.9 z^-1,
    /// an AR(1) process whose lag-1 autocorrelation is 0.9); a positive one a high-pass
    /// model (-0.9). White noise has none.
    #[test]
    fn reflection_coefficients_shape_the_spectrum() {
        let mut out = vec![0i16; 16_000];
        for (payload, expected) in [
            (&[40u8, 127 - 115][..], 0.9),
            (&[40u8, 127 + 115][..], -0.9),
            (&[40u8][..], 0.0),
        ] {
            let mut g = NoiseGenerator::new(3);
            g.set(&ComfortNoise::parse(payload).unwrap());
            g.fill(&mut out);
            let energy: f32 = out.iter().map(|&s| f32::from(s).powi(2)).sum();
            let lag1: f32 = out
                .windows(2)
                .map(|w| f32::from(w[0]) * f32::from(w[1]))
                .sum();
            let r1 = lag1 / energy;
            assert!((r1 - expected).abs() < 0.05, "{payload:?}: r1 = {r1}");
        }
    }

    #[test]
    fn quietest_level_is_silence_and_new_is_silent() {
        let mut out = [1i16; 160];
        NoiseGenerator::new(0).fill(&mut out);
        assert!(out.iter().all(|&s| s == 0));
        let mut g = NoiseGenerator::new(9);
        g.set(&ComfortNoise::white(127));
        g.fill(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }
}
