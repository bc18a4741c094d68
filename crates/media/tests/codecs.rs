//! The wideband codecs through the public API: G.722 and Opus round trips measured by
//! level and frequency (Goertzel), Opus packet loss concealment, comfort noise, and the
//! path a narrowband caller takes into a 16 kHz conference and back out as G.722.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::f64::consts::PI;

use dialbridge_media::g722::{G722_FRAME_BYTES, G722_FRAME_SAMPLES};
use dialbridge_media::opus::OPUS_MAX_PACKET;
use dialbridge_media::{
    AudioCodec, Codec, CodecState, ComfortNoise, G722Decoder, G722Encoder, NoiseGenerator,
    OpusDecoder, OpusEncoder, OpusRate, Resampler, SampleRate,
};

fn tone(freq: f64, amplitude: f64, rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// A speech-like test signal: a 140 Hz glottal pulse train through three formants
/// (700, 1200, 2500 Hz), its level moving like syllables (4 Hz).
fn speech_like(rate: u32, n: usize) -> Vec<i16> {
    let fs = f64::from(rate);
    let mut y = vec![0.0f64; n];
    let formants = [(700.0, 80.0), (1200.0, 90.0), (2500.0, 120.0)];
    let mut states = [(0.0f64, 0.0f64); 3];
    for (i, out) in y.iter_mut().enumerate() {
        let t = i as f64 / fs;
        let pulse = if (i as f64 * 140.0 / fs).fract() < 140.0 / fs {
            1.0
        } else {
            0.0
        };
        let mut sum = 0.0;
        for ((f, bw), (s1, s2)) in formants.iter().zip(states.iter_mut()) {
            let r = (-PI * bw / fs).exp();
            let a1 = 2.0 * r * (2.0 * PI * f / fs).cos();
            let a2 = -r * r;
            let s = pulse + a1 * *s1 + a2 * *s2;
            *s2 = *s1;
            *s1 = s;
            sum += s;
        }
        *out = sum * (0.6 + 0.4 * (2.0 * PI * 4.0 * t).sin());
    }
    let peak = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    y.iter().map(|v| (v / peak * 16_000.0) as i16).collect()
}

/// Amplitude of the `freq` component of `x` (Goertzel), scaled to a sine's peak.
fn goertzel(x: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2).max(0.0).sqrt() * 2.0 / x.len() as f64
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// SNR of `out` against `input` delayed by `delay` samples, skipping the first `skip`.
fn snr(input: &[i16], out: &[i16], delay: usize, skip: usize) -> f64 {
    let (mut signal, mut noise) = (0.0, 0.0);
    for n in skip..out.len() {
        let x = f64::from(input[n - delay]);
        signal += x * x;
        noise += (x - f64::from(out[n])).powi(2);
    }
    10.0 * (signal / noise).log10()
}

fn g722_round_trip(input: &[i16]) -> Vec<i16> {
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let mut out = vec![0i16; input.len()];
    let mut bytes = [0u8; G722_FRAME_BYTES];
    for (pcm, o) in input
        .chunks(G722_FRAME_SAMPLES)
        .zip(out.chunks_mut(G722_FRAME_SAMPLES))
    {
        let n = enc.encode_frame(pcm, &mut bytes);
        assert_eq!(dec.decode_frame(&bytes[..n], o), pcm.len());
    }
    out
}

/// The QMF pair delays by 22 samples at 16 kHz.
const G722_DELAY: usize = 22;

#[test]
fn g722_tone_snr_above_40_db() {
    // 1013 Hz rather than 1 kHz so that the sine does not repeat every 16 samples.
    for freq in [1013.0, 300.0] {
        let input = tone(freq, 12_000.0, 16_000, 32_000);
        let out = g722_round_trip(&input);
        let s = snr(&input, &out, G722_DELAY, 1600);
        assert!(s > 40.0, "{freq} Hz: {s:.1} dB");
    }
}

#[test]
fn g722_speech_like_snr_and_wideband() {
    let input = speech_like(16_000, 32_000);
    let out = g722_round_trip(&input);
    let s = snr(&input, &out, G722_DELAY, 1600);
    assert!(s > 20.0, "speech-like: {s:.1} dB");
    // What makes it wideband: a 6 kHz tone, which G.711 cannot carry, comes through at
    // its level (within 1.5 dB).
    let high = tone(6000.0, 8000.0, 16_000, 16_000);
    let out = g722_round_trip(&high);
    let level = goertzel(&out[1600..], 6000.0, 16_000);
    assert!(
        (20.0 * (level / 8000.0).log10()).abs() < 1.5,
        "6 kHz: {level:.0}"
    );
}

#[test]
fn opus_keeps_frequency_and_level() {
    for rate in [OpusRate::Wideband, OpusRate::Fullband] {
        let hz = rate.hz();
        let n = rate.frame_samples();
        let input = tone(1000.0, 10_000.0, hz, n * 100);
        let mut enc = OpusEncoder::new(rate).unwrap();
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut packet = [0u8; OPUS_MAX_PACKET];
        let mut out = vec![0i16; input.len()];
        let mut bytes = 0;
        for (pcm, o) in input.chunks(n).zip(out.chunks_mut(n)) {
            let len = enc.encode_frame(pcm, &mut packet).unwrap();
            bytes += len;
            assert_eq!(dec.decode_frame(&packet[..len], o), n);
        }
        let tail = &out[out.len() / 2..];
        let at_1k = goertzel(tail, 1000.0, hz);
        assert!(
            (20.0 * (at_1k / 10_000.0).log10()).abs() < 1.0,
            "{rate:?}: 1 kHz at {at_1k:.0}"
        );
        // The energy is at 1 kHz, not spread elsewhere.
        for other in [500.0, 2000.0, 3000.0] {
            let leak = goertzel(tail, other, hz);
            assert!(leak < at_1k / 100.0, "{rate:?}: {other} Hz at {leak:.0}");
        }
        // Near the 32 kbit/s asked for (80 octets per 20 ms frame), VBR allowing.
        let kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
        assert!((10.0..48.0).contains(&kbps), "{rate:?}: {kbps:.1} kbit/s");
    }
}

#[test]
fn opus_conceals_lost_packets() {
    let rate = OpusRate::Wideband;
    let n = rate.frame_samples();
    let input = tone(440.0, 10_000.0, rate.hz(), n * 20);
    let mut enc = OpusEncoder::new(rate).unwrap();
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut packet = [0u8; OPUS_MAX_PACKET];
    let mut frame = vec![0i16; n];
    for pcm in input.chunks(n) {
        let len = enc.encode_frame(pcm, &mut packet).unwrap();
        dec.decode_frame(&packet[..len], &mut frame);
    }
    // The first lost frame continues the tone: same pitch, most of the level.
    assert_eq!(dec.decode_frame(&[], &mut frame), n);
    let level = rms(&frame);
    assert!(level > 10_000.0 / 2f64.sqrt() * 0.3, "PLC level {level:.0}");
    assert!(goertzel(&frame, 440.0, rate.hz()) > goertzel(&frame, 1500.0, rate.hz()) * 5.0);
    // Long losses fade out rather than buzz forever.
    for _ in 0..50 {
        assert_eq!(dec.conceal(&mut frame), n);
    }
    assert!(
        rms(&frame) < level / 10.0,
        "after 1 s of loss: {}",
        rms(&frame)
    );
    assert_eq!(dec.rejected(), 0);
}

/// A G.711 caller's frame goes up to the 16 kHz mix, and the mix goes out as G.722 and
/// as G.711 again: the tone keeps its frequency and level on both legs.
#[test]
fn narrowband_caller_in_a_wideband_conference() {
    let caller = tone(800.0, 10_000.0, 8000, 8000);
    let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz16000);
    let mut down = Resampler::new(SampleRate::Hz16000, SampleRate::Hz8000);
    let mut g711 = CodecState::new(AudioCodec::G711(Codec::Pcmu)).unwrap();
    let mut g722 = CodecState::new(AudioCodec::G722).unwrap();
    let mut g722_listener = G722Decoder::new();

    let mut heard_wide = Vec::new();
    let mut heard_narrow = Vec::new();
    let mut payload = [0u8; 160];
    let mut narrow = [0i16; 160];
    let mut wide = [0i16; 320];
    let mut out_wide = [0i16; 320];
    let mut out_narrow = [0i16; 160];
    for frame in caller.chunks(160) {
        // In: PCMU on the wire, decoded, up-sampled into the mix.
        let len = g711.encode_frame(frame, &mut payload).unwrap();
        g711.decode_frame(&payload[..len], &mut narrow);
        assert_eq!(up.process(&narrow, &mut wide), 320);
        // Out to a G.722 listener.
        let len = g722.encode_frame(&wide, &mut payload).unwrap();
        assert_eq!(len, 160);
        g722_listener.decode_frame(&payload[..len], &mut out_wide);
        heard_wide.extend_from_slice(&out_wide);
        // Out to a G.711 listener.
        assert_eq!(down.process(&wide, &mut out_narrow), 160);
        heard_narrow.extend_from_slice(&out_narrow);
    }
    let wide_level = goertzel(&heard_wide[3200..], 800.0, 16_000);
    let narrow_level = goertzel(&heard_narrow[1600..], 800.0, 8000);
    for (name, level) in [("G.722", wide_level), ("G.711", narrow_level)] {
        let db = 20.0 * (level / 10_000.0).log10();
        assert!(db.abs() < 1.0, "{name} leg: {db:.2} dB");
    }
}

#[test]
fn comfort_noise_payload_drives_the_generator() {
    // A SID frame at -50 dBov with a low-pass tilt, as a G.711 SBC might send.
    let cn = ComfortNoise::parse(&[50, 127 - 64, 127 + 20]).unwrap();
    assert_eq!(cn.level_dbov(), 50);
    assert_eq!(cn.reflection().len(), 2);
    let mut generator = NoiseGenerator::new(42);
    generator.set(&cn);
    let mut frame = [0i16; 160];
    let mut all = Vec::new();
    for _ in 0..50 {
        generator.fill(&mut frame);
        all.extend_from_slice(&frame);
    }
    let measured = ComfortNoise::measure(&all[160..]).level_dbov();
    assert!(measured.abs_diff(50) <= 1, "{measured}");
}
