//! sbc-sim: places SIP calls into dialbridge as an operator SBC, the Microsoft PSTN or a
//! softphone — one call (`sbc-sim call`) with progress and checks, or load
//! (`sbc-sim load`) with a latency report — and takes the bridge's dial-outs as the
//! phone at a trunk's outbound target (`sbc-sim answer`), one JSON report per call.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sbc_sim::answer::{self, AnswerArgs};
use sbc_sim::audio_check::Expectation;
use sbc_sim::call::{self, CallConfig, Progress};
use sbc_sim::codec::CallCodec;
use sbc_sim::dtmf::DtmfMode;
use sbc_sim::load::{self, LoadConfig};
use sbc_sim::rtp::Source;
use sbc_sim::script::{Script, parse_duration};
use sbc_sim::ua::{Signaling, Transport};
use sbc_sim::{CallOutcome, Error, Expect};

/// Most one `call` records: 10 minutes (counted in 8 kHz samples, whatever the codec).
const CALL_RECORD_LIMIT: usize = 10 * 60 * 8000;
/// Most one load call records: 2 minutes.
const LOAD_RECORD_LIMIT: usize = 2 * 60 * 8000;
/// Amplitude of the generated tone (about -12 dBFS).
const TONE_AMPLITUDE: i16 = 8000;

#[derive(Debug, Parser)]
#[command(
    name = "sbc-sim",
    version,
    about = "Places SIP calls and load into dialbridge, and takes its dial-outs",
    after_help = "Examples (the demo deployment, fixtures/demo.toml):
  sbc-sim call --from-ip 127.0.0.20 --to +33170000100 --tone 440 \\
      --script 'wait 2s, keys 123456789#, wait 1s, keys #, wait 5s' --expect-audio
  sbc-sim call --from-ip 127.0.0.1 --user alice --password alice-secret --to +14255550100
  sbc-sim call --from-ip 127.0.0.10 --to +14255550999 --expect-status 404
  sbc-sim call --from-ip 127.0.0.20 --to +33170000100 --codec g722 --tone 6000 \\
      --script 'wait 500ms, keys 123456789#, wait 1500ms, keys #, wait 10s'
  sbc-sim call --from-ip 127.0.0.1 --user alice --password alice-secret \\
      --to +14255550100 --codec opus --wav speech-48k.wav --record heard.wav
  sbc-sim call --from-ip 127.0.0.20 --sdp-address 127.0.0.99 --to +33170000100 \\
      --tone 440 --script 'wait 500ms, keys 123456789#, wait 1500ms, keys #, wait 8s'
  sbc-sim call --bridge [::1]:5060 --from-ip ::1 --user alice --password alice-secret \\
      --to +14255550100 --expect-audio
  sbc-sim load --from-ip 127.0.0.10 --to +14255550100 --calls 1000 --rate 100 \\
      --hold 5s --conference 123456789 --json
  sbc-sim answer --listen 127.0.0.10:5080 --key 1 --expect-tone 440 --hold-ms 10000
  sbc-sim answer --listen 127.0.0.20:5080 --answer 486 --calls 2
  sbc-sim answer --listen 127.0.0.10:5080 --options 503 --calls 0 --timeout 30s"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One call, with progress and checks; exit code 0 when it went as expected.
    Call(CallArgs),
    /// N calls at R calls per second, with a report.
    Load(LoadArgs),
    /// The phone a dial-out reaches: takes --calls calls at --listen (UDP), answers or
    /// refuses, keys, talks a tone, checks what it hears; one JSON line per call on
    /// stdout (progress on stderr); exit code 0 when every call went as told.
    Answer(AnswerArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodecArg {
    /// G.711 µ-law, PT 0, 8 kHz.
    Pcmu,
    /// G.711 A-law, PT 8, 8 kHz.
    Pcma,
    /// G.722, PT 9, 16 kHz.
    G722,
    /// Opus, dynamic PT 111, sent at 48 kHz.
    Opus,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DtmfArg {
    Rfc4733,
    Info,
    InBand,
    /// Tones in the audio, telephone-event offered all the same.
    InBandWithTelephoneEvent,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The bridge's SIP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    bridge: SocketAddr,
    /// Source address to send from (picks the trunk: 127.0.0.10, .20, .30).
    #[arg(long, default_value = "127.0.0.20")]
    from_ip: IpAddr,
    /// The number dialled.
    #[arg(long, default_value = "+33170000100")]
    to: String,
    /// The calling number (user part of From); defaults to --user or +14155550100.
    #[arg(long)]
    from: Option<String>,
    /// SIP transport.
    #[arg(long, value_enum, default_value = "udp")]
    transport: TransportArg,
    /// With `--transport tls`: the CA (PEM) that signed the bridge's certificate
    /// (the demo's is fixtures/tls/ca.pem).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Digest user (softphones).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Digest password.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// The codec offered (alone, with telephone-event) and spoken; tones and WAVs
    /// are sent at its rate: 8 kHz G.711, 16 kHz G.722, 48 kHz Opus.
    #[arg(long, value_enum, default_value = "pcmu")]
    codec: CodecArg,
    /// Send a sine tone at this frequency, Hz (below half the codec's rate).
    #[arg(long, conflicts_with = "wav")]
    tone: Option<f64>,
    /// Send this WAV file (16-bit PCM, looped; kept at 8, 16 or 48 kHz, else 8 kHz).
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Give this address for our media in the SDP (`c=`), while RTP still goes from
    /// and to our real socket: a caller behind NAT (e.g. 127.0.0.99, where nothing
    /// listens).
    #[arg(long)]
    sdp_address: Option<IpAddr>,
    /// How DTMF keys are sent.
    #[arg(long, value_enum, default_value = "rfc4733")]
    dtmf: DtmfArg,
    /// What to do once answered: "wait 2s, keys 123456789#, wait 1s, keys #, wait 5s".
    #[arg(long, default_value = "")]
    script: String,
    /// Stay this long after the script, then BYE (default 5s without a script, 0s with one).
    #[arg(long, value_parser = parse_duration)]
    hold: Option<Duration>,
    /// CANCEL when no final response came within this time.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    setup_timeout: Duration,
    /// Expect a tone at this frequency, Hz, in what was heard.
    #[arg(long)]
    expect_tone: Option<f64>,
    /// Expect to hear nothing.
    #[arg(long)]
    expect_silence: bool,
    /// Expect to hear audio (a prompt).
    #[arg(long)]
    expect_audio: bool,
    /// Expect this final status (404 for an unassigned number...).
    #[arg(long, default_value_t = 200)]
    expect_status: u16,
    /// Expect the bridge to hang up (a wrong conference ID, a full meeting...).
    #[arg(long)]
    expect_bye: bool,
    /// Write what was heard to this WAV, mono 16-bit, 8 kHz (G.711) or 16 kHz
    /// (G.722, Opus) (`call` only).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Print the outcome as JSON (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    call: CallArgs,
    /// Calls to place.
    #[arg(long, default_value_t = 100)]
    calls: u64,
    /// Calls started per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Key this conference ID and `#` (unless --script is given).
    #[arg(long)]
    conference: Option<String>,
    /// Then this leader PIN and `#` (default: just `#`).
    #[arg(long)]
    pin: Option<String>,
    /// Most calls in flight at once.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// No call starts after this (default: launch time plus one call's limit).
    #[arg(long, value_parser = parse_duration)]
    time_limit: Option<Duration>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sbc-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Call(args) => run_call(args).await,
            Command::Load(args) => run_load(args).await,
            Command::Answer(args) => run_answer(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sbc-sim: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints progress lines with the time since the start.
struct Printer {
    start: Instant,
    to_stderr: bool,
}

impl Progress for Printer {
    fn line(&self, text: &str) {
        let line = format!("{:>8.3}s  {text}", self.start.elapsed().as_secs_f64());
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

async fn run_call(args: CallArgs) -> Result<bool, Error> {
    let record = args.record.clone();
    let wants_audio =
        record.is_some() || args.expect_tone.is_some() || args.expect_silence || args.expect_audio;
    let config = call_config(&args, None, if wants_audio { CALL_RECORD_LIMIT } else { 0 })?;
    let signaling = connect(&args, 1).await?;
    let printer = Printer {
        start: Instant::now(),
        to_stderr: args.json,
    };
    let outcome = call::run(&signaling, &config, &printer).await;
    if let Some(path) = &record {
        write_wav(path, &outcome.heard, outcome.heard_rate)?;
        printer.line(&format!(
            "recorded {:.1} s at {} Hz to {}",
            outcome.heard.len() as f64 / f64::from(outcome.heard_rate.max(1)),
            outcome.heard_rate,
            path.display()
        ));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        print_outcome(&printer, &outcome);
    }
    Ok(outcome.passed())
}

async fn run_load(args: LoadArgs) -> Result<bool, Error> {
    if args.call.record.is_some() {
        return Err(Error::invalid("--record", "only with `call`"));
    }
    let script = match (&args.conference, args.call.script.trim().is_empty()) {
        (Some(id), true) => Some(format!(
            "wait 1s, keys {id}#, wait 1500ms, keys {}#",
            args.pin.as_deref().unwrap_or("")
        )),
        _ => None,
    };
    let wants_audio =
        args.call.expect_tone.is_some() || args.call.expect_silence || args.call.expect_audio;
    let call = call_config(
        &args.call,
        script.as_deref(),
        if wants_audio { LOAD_RECORD_LIMIT } else { 0 },
    )?;
    let time_limit = args
        .time_limit
        .unwrap_or_else(|| LoadConfig::default_time_limit(args.calls, args.rate, &call));
    let max_in_flight = args.max_in_flight.max(1);
    let signaling = connect(&args.call, max_in_flight).await?;
    let config = LoadConfig {
        calls: args.calls,
        rate: args.rate,
        max_in_flight,
        time_limit,
        call,
    };
    let bar = ProgressBar::new(args.calls);
    if args.quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} calls, {msg}")
    {
        bar.set_style(style);
    }
    let report = load::run(&signaling, &config, Some(&bar)).await;
    bar.finish_and_clear();
    let summary = report.summary();
    if args.call.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        print!("{}", report.text());
    }
    Ok(summary.passed == args.calls)
}

async fn run_answer(args: AnswerArgs) -> Result<bool, Error> {
    let listening = answer::bind(args.config()?).await?;
    let printer = Printer {
        start: Instant::now(),
        to_stderr: true,
    };
    // What a test waits for before it dials.
    printer.line(&format!("listening on {}", listening.local_addr()));
    let summary = listening
        .run(&printer, stop_signal(), &mut |report| {
            println!("{}", report.json_line());
        })
        .await;
    printer.line(&format!(
        "{} calls, {} as told, {} OPTIONS",
        summary.calls, summary.passed, summary.options
    ));
    for failure in &summary.failures {
        printer.line(&format!("✗ {failure}"));
    }
    Ok(summary.passed())
}

/// SIGINT or SIGTERM: the answerer ends its calls, reports them and exits.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // A signal that cannot be listened for never comes.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                Some(()) = term.recv() => {}
                () = ctrl_c => {}
            }
        }
        Err(_) => ctrl_c.await,
    }
}

fn call_config(
    args: &CallArgs,
    script: Option<&str>,
    record_limit: usize,
) -> Result<CallConfig, Error> {
    let script = Script::parse(script.unwrap_or(&args.script))?;
    let hold = args.hold.unwrap_or(if script.steps.is_empty() {
        Duration::from_secs(5)
    } else {
        Duration::ZERO
    });
    let codec = match args.codec {
        CodecArg::Pcmu => CallCodec::Pcmu,
        CodecArg::Pcma => CallCodec::Pcma,
        CodecArg::G722 => CallCodec::G722,
        CodecArg::Opus => CallCodec::Opus,
    };
    // 100 Hz below the Nyquist frequency: 3900 Hz for G.711, 7900 for G.722, ...
    let top = |rate: u32| f64::from(rate / 2 - 100);
    let source = match (&args.tone, &args.wav) {
        (Some(hz), _) => {
            let max = top(codec.send_rate().hz());
            if !(20.0..=max).contains(hz) {
                return Err(Error::invalid(
                    "--tone",
                    format!("between 20 and {max} Hz with {}", codec.name()),
                ));
            }
            Source::Tone {
                hz: *hz,
                amplitude: TONE_AMPLITUDE,
            }
        }
        (None, Some(path)) => Source::wav(path)?,
        (None, None) => Source::Silence,
    };
    let mut audio = Vec::new();
    if let Some(hz) = args.expect_tone {
        let max = top(codec.record_rate().hz());
        if !(20.0..=max).contains(&hz) {
            return Err(Error::invalid(
                "--expect-tone",
                format!("between 20 and {max} Hz with {}", codec.name()),
            ));
        }
        audio.push(Expectation::Tone(hz));
    }
    if args.expect_silence {
        audio.push(Expectation::Silence);
    }
    if args.expect_audio {
        audio.push(Expectation::Audio);
    }
    let credentials = args.user.clone().zip(args.password.clone());
    Ok(CallConfig {
        to: args.to.clone(),
        from_user: args
            .from
            .clone()
            .or_else(|| args.user.clone())
            .unwrap_or_else(|| "+14155550100".into()),
        from_host: args.user.as_ref().map(|_| "dialbridge".to_owned()),
        credentials,
        codec,
        source,
        sdp_address: args.sdp_address,
        dtmf: match args.dtmf {
            DtmfArg::Rfc4733 => DtmfMode::Rfc4733,
            DtmfArg::Info => DtmfMode::Info,
            DtmfArg::InBand => DtmfMode::InBand,
            DtmfArg::InBandWithTelephoneEvent => DtmfMode::InBandWithTelephoneEvent,
        },
        script,
        hold,
        setup_timeout: args.setup_timeout,
        record_limit,
        expect: Expect {
            status: args.expect_status,
            bridge_hangs_up: args.expect_bye,
            audio,
        },
    })
}

async fn connect(args: &CallArgs, max_calls: usize) -> Result<Signaling, Error> {
    let transport = match args.transport {
        TransportArg::Udp => Transport::Udp,
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Tls => Transport::Tls,
    };
    Signaling::connect_with_ca(
        transport,
        args.from_ip,
        args.bridge,
        max_calls,
        args.tls_ca.as_deref(),
    )
    .await
}

fn print_outcome(printer: &Printer, o: &CallOutcome) {
    let ms = |d: Option<Duration>| d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
    if let Some(setup) = ms(o.setup) {
        printer.line(&format!("setup {setup}"));
    }
    if let Some(r) = ms(o.dtmf_to_response) {
        printer.line(&format!("last key → bridge's answer {r}"));
    }
    if let Some(c) = &o.codec {
        printer.line(&format!(
            "codec {}/{} PT {}{}",
            c.encoding,
            c.clock_rate,
            c.payload_type,
            c.telephone_event
                .map(|te| format!(", telephone-event PT {te}"))
                .unwrap_or_default()
        ));
    }
    let m = &o.media;
    printer.line(&format!(
        "RTP sent {} (events {}), received {} (events {}), dropped {}",
        m.sent, m.events_sent, m.received, m.events_received, m.dropped
    ));
    if let Some(a) = &o.analysis {
        printer.line(&format!(
            "heard {:.1} s: {} audible blocks, {} tone blocks (longest run {}), peak RMS {:.0}",
            a.blocks as f64 / 10.0,
            a.audible_blocks,
            a.tone_blocks,
            a.tone_run,
            a.peak_rms
        ));
    }
    if o.passed() {
        printer.line("✓ call went as expected");
    } else {
        for f in &o.failures {
            printer.line(&format!("✗ {f}"));
        }
    }
}

fn write_wav(path: &PathBuf, samples: &[i16], rate: u32) -> Result<(), Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    Ok(())
}
