//! Audio checks for tests: how much of one frequency a signal holds (Goertzel), and G.711
//! µ-law decoding written independently of the media crate so a test does not check the
//! codec with itself.

/// Power of `freq` (Hz) in `samples` at `rate` (Hz), normalised by the signal's length.
pub fn goertzel_power(samples: &[i16], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len().max(1) as f64).powi(2)
}

/// Root-mean-square level of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// G.711 µ-law to linear (ITU-T G.711), the textbook formula.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// Reads a 16-bit PCM mono WAV (the prompts under fixtures/prompts/ are 8 kHz).
pub fn read_wav(path: &std::path::Path) -> Vec<i16> {
    let reader = hound::WavReader::open(path).expect("a readable 16-bit WAV");
    reader
        .into_samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

/// Reads a 16-bit PCM WAV and its sample rate; of several channels, the first. The
/// samples end where the file does: Linphone's recorder counts its header in the data
/// size it writes.
pub fn read_wav_at(path: &std::path::Path) -> (Vec<i16>, u32) {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: not a readable WAV: {e}", path.display()));
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples = reader
        .into_samples::<i16>()
        .map_while(Result::ok)
        .step_by(channels)
        .collect();
    (samples, spec.sample_rate)
}

/// Writes `seconds` of a steady sine at `hz` (amplitude 6000) as a mono 16-bit WAV at
/// `rate`, for a softphone to play as its microphone.
pub fn write_tone_wav(path: &std::path::Path, hz: f64, seconds: u32, rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the tone WAV");
    for n in 0..seconds * rate {
        let t = f64::from(n) / f64::from(rate);
        let s = 6000.0 * (2.0 * std::f64::consts::PI * hz * t).sin();
        writer.write_sample(s as i16).expect("write the tone WAV");
    }
    writer.finalize().expect("finish the tone WAV");
}

/// Loudness envelope: RMS of consecutive 20 ms (160-sample) blocks.
pub fn envelope(samples: &[i16]) -> Vec<f64> {
    samples.chunks_exact(160).map(rms).collect()
}

/// How well `prompt` matches somewhere inside `heard`: the best normalised correlation
/// (-1..=1) of their loudness envelopes, over every 20 ms offset. Speech prompts give
/// 0.9 and more where they were played (G.711 and the mix change the samples, not the
/// envelope), and well under that elsewhere.
pub fn prompt_match(heard: &[i16], prompt: &[i16]) -> f64 {
    let h = envelope(heard);
    let p = envelope(prompt);
    if p.len() < 5 || h.len() < p.len() {
        return 0.0;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let pm = mean(&p);
    let pd: Vec<f64> = p.iter().map(|x| x - pm).collect();
    let pn = pd.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut best = f64::MIN;
    for start in 0..=h.len() - p.len() {
        let window = &h[start..start + p.len()];
        let wm = mean(window);
        let (mut dot, mut wn) = (0.0, 0.0);
        for (x, y) in window.iter().zip(&pd) {
            dot += (x - wm) * y;
            wn += (x - wm) * (x - wm);
        }
        if wn > 0.0 && pn > 0.0 {
            best = best.max(dot / (wn.sqrt() * pn));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone_it_is_given() {
        let tone: Vec<i16> = (0..1600)
            .map(|n| {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert!(
            goertzel_power(&tone, 8000.0, 440.0) > 100.0 * goertzel_power(&tone, 8000.0, 1000.0)
        );
    }

    #[test]
    fn a_prompt_is_found_where_it_was_played_and_not_elsewhere() {
        let dir = crate::fixtures().join("prompts");
        let not_found = read_wav(&dir.join("not-found.wav"));
        let goodbye = read_wav(&dir.join("goodbye.wav"));
        let mut heard = vec![0i16; 8000];
        heard.extend(&goodbye);
        heard.extend(vec![0i16; 4000]);
        heard.extend(&not_found);
        heard.extend(vec![0i16; 8000]);
        assert!(prompt_match(&heard, &not_found) > 0.95);
        let other = read_wav(&dir.join("wrong-pin.wav"));
        assert!(
            prompt_match(&heard, &other) < 0.9,
            "{}",
            prompt_match(&heard, &other)
        );
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }
}
