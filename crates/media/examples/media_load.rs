//! Media load benchmark: N simultaneous G.711 participants in conferences of 10 on
//! one [`MediaEngine`], fed over loopback by a packet generator running as a
//! separate process (so its CPU is not counted as the bridge's).
//!
//! ```text
//! cargo run --release -p dialbridge-media --example media_load -- 1000 [--seconds 20] [--warmup 5] [--no-drain] [--events-only | --queue-audio] [--gen-prio P] [--shards N]
//! ```
//!
//! The generator binds one UDP socket per 100 participants (an SBC's media ports),
//! sends every participant's 20 ms PCMU packet each tick with `sendmmsg` (two
//! talkers per conference, the rest silence) and counts what the bridge sends back
//! with `recvmmsg`. The bridge side opens N sessions, puts them in rooms of 10 and,
//! like the server's call tasks, drains every inbound queue in a tokio task. By
//! default every participant's audio is also searched for in-band DTMF as the server
//! does in a meeting: the call's Goertzel detector (`conference::ToneListener`) runs
//! on the clock over the frames the room decodes, and only RFC 4733 events (and the
//! digits found) reach the task. `--events-only`: mixed only, no in-band detection
//! (a participant whose DTMF comes as RFC 4733 events); `--queue-audio`: every audio
//! packet also queued to the task (how the server searched for in-band DTMF before);
//! `--no-drain`: nobody reads the queues.
//!
//! Reported over the measured window: bridge CPU (getrusage, and per thread from
//! /proc/self/task), tick lateness p50/p99/max, packets lost inside the bridge
//! (send drops, inbound queue overflows), packets lost at the receivers (sent by
//! the bridge but not received by the generator), receive syscalls per second;
//! the sessions present at the end of the window, what the generator delivered
//! (packets sent ÷ packets due: its 20 ms slots in the window × N, slots it gave up
//! when more than 10 periods behind counting as due but missed), what came back to
//! it (received ÷ sent by the bridge), and a verdict: `clean=yes` only when the
//! generator delivered at least 99.9 % of its packets, the p99 tick lateness is
//! under 5 ms and nothing was lost inside the bridge (else `clean=no why=...`).
//!
//! Generator protocol (also driven by the kernel floor, `shared/bench/floor.py`,
//! which reads fields 1 to 3 of `done` only): it prints `ports P...`, is told
//! `bridge P...`, then `mark` (the window starts) and `stop`, and answers
//! `done <received> <sent> <cpu_ms> <due> <missed_ticks> <late_ticks>`, all since
//! `mark`; it also writes that summary to stderr as a `generator: ...` line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{GoertzelDetector, ToneListener};
use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{Codec, EngineOptions, FRAME_SAMPLES, MediaEngine, RtpSession};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage, recvmmsg, sendmmsg};

/// What the bridge side does with each participant's received audio besides mixing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In-band DTMF searched on the clock (the server's way in a meeting).
    InBand,
    /// Mixed only.
    MixedOnly,
    /// Every audio packet queued to the participant's task.
    QueueAudio,
}

const ROOM: usize = 10;
const PER_SOCKET: usize = 100;
const PACKET: usize = 12 + FRAME_SAMPLES;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    raise_nofile();
    if args.get(1).map(String::as_str) == Some("--generator") {
        let n: usize = args[2].parse().expect("participants");
        generator(n);
        return;
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let flag = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = flag("--seconds", 20);
    let warmup = flag("--warmup", 5);
    let drain = !args.iter().any(|a| a == "--no-drain");
    // Conference phase with RFC 4733 DTMF: audio is mixed, not queued to consumers.
    let mode = if args.iter().any(|a| a == "--events-only") {
        Mode::MixedOnly
    } else if args.iter().any(|a| a == "--queue-audio") {
        Mode::QueueAudio
    } else {
        Mode::InBand
    };
    let gen_prio = args
        .iter()
        .position(|a| a == "--gen-prio")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<u32>().ok());
    // Shards (clock and receive threads) of the engine; None: one per core.
    let shards = args
        .iter()
        .position(|a| a == "--shards")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse::<usize>().expect("--shards N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bridge(n, seconds, warmup, drain, mode, gen_prio, shards));
}

/// Raises the soft open-file limit to the hard limit (each participant is two
/// sockets on the bridge).
fn raise_nofile() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

async fn bridge(
    n: usize,
    seconds: u64,
    warmup: u64,
    drain: bool,
    mode: Mode,
    gen_prio: Option<u32>,
    shards: Option<usize>,
) {
    let exe = std::env::current_exe().unwrap();
    // With --gen-prio P (the bridge itself under `chrt -f` with a higher priority),
    // the generator runs SCHED_FIFO at P: above the machine's other jobs, below the
    // bridge, so that it never delays a tick.
    let mut command = match gen_prio {
        Some(p) => {
            let mut c = Command::new("chrt");
            c.args(["-f", &p.to_string()]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .args(["--generator", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_gen = child.stdin.take().unwrap();
    let mut from_gen = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    from_gen.read_line(&mut line).unwrap();
    let gen_ports: Vec<u16> = line
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();

    let options = EngineOptions {
        shards: shards.unwrap_or(0),
        ..EngineOptions::default()
    };
    let engine =
        MediaEngine::with_options(Ipv4Addr::LOCALHOST.into(), 20_000..=59_998, options).unwrap();
    let mut sessions: Vec<RtpSession> = Vec::with_capacity(n);
    let consumed = Arc::new(AtomicU64::new(0));
    let mut room = engine.create_room(ROOM);
    for i in 0..n {
        let remote = SocketAddr::from((Ipv4Addr::LOCALHOST, gen_ports[i / PER_SOCKET]));
        let mut s = engine.open(remote, Codec::Pcmu, Some(101)).unwrap();
        if i % ROOM == 0 && i > 0 {
            room = engine.create_room(ROOM);
        }
        s.join_room(room).unwrap();
        s.set_deliver_audio(mode == Mode::QueueAudio);
        // The server's way: the clock runs the detector, digits come by a queue.
        let (tones_tx, mut tones) = tokio::sync::mpsc::channel::<Digit>(16);
        if mode == Mode::InBand {
            let listener = ToneListener::new(GoertzelDetector::default(), move |digit, _| {
                let _ = tones_tx.try_send(digit);
            });
            s.set_in_band_listener(Some(Box::new(listener)));
        }
        let inbound = s.take_inbound().unwrap();
        if drain {
            let consumed = consumed.clone();
            tokio::spawn(async move {
                let mut inbound = inbound;
                loop {
                    tokio::select! {
                        packet = inbound.recv() => match packet {
                            Some(_) => consumed.fetch_add(1, Ordering::Relaxed),
                            None => break,
                        },
                        Some(_) = tones.recv() => consumed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        sessions.push(s);
    }
    let ports: Vec<String> = sessions
        .iter()
        .map(|s| s.local_port().to_string())
        .collect();
    writeln!(to_gen, "bridge {}", ports.join(" ")).unwrap();
    to_gen.flush().unwrap();

    tokio::time::sleep(Duration::from_secs(warmup)).await;

    // The measured window. The bridge's sent counts are read right before `mark` and
    // `stop`, where the generator starts and stops counting what it receives.
    let stats_before = engine.stats();
    engine.reset_clock_stats();
    let threads_before = thread_cpu();
    let cpu_before = process_cpu();
    let sent_before: u64 = sessions.iter().map(|s| s.stats().sent).sum();
    writeln!(to_gen, "mark").unwrap();
    to_gen.flush().unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let sent_after: u64 = sessions.iter().map(|s| s.stats().sent).sum();
    writeln!(to_gen, "stop").unwrap();
    to_gen.flush().unwrap();
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu_before;
    let threads_after = thread_cpu();
    let stats = engine.stats();
    line.clear();
    from_gen.read_line(&mut line).unwrap();
    let done = GeneratorDone::parse(&line);
    let (gen_received, gen_sent, gen_cpu_ms) = (done.received, done.sent, done.cpu_ms);
    let _ = child.wait();

    let secs = wall.as_secs_f64();
    let bridge_sent = sent_after - sent_before;
    let lost_inside = (stats.send_dropped - stats_before.send_dropped)
        + (stats.receive_queue_overflows - stats_before.receive_queue_overflows);
    let skipped = stats.ticks_skipped - stats_before.ticks_skipped;
    let rx_calls = stats.receive_syscalls - stats_before.receive_syscalls;
    let rx_wakeups = stats.receive_wakeups - stats_before.receive_wakeups;
    let rx_datagrams = stats.receive_datagrams - stats_before.receive_datagrams;
    let l = stats.tick_lateness;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let present = stats.sessions;
    let received_back = percent(gen_received, bridge_sent);
    let verdict = Verdict::judge(&done, l.p99, lost_inside);
    let shards = engine.shard_count();
    println!(
        "participants={n} rooms={} window={secs:.1}s cpu={:.1}% generator_cpu={:.1}% loadavg={load} p50={:.2}ms p99={:.2}ms max={:.2}ms \
         ticks={} skipped_ticks={skipped} lost_inside={lost_inside} bridge_sent={bridge_sent} gen_received={gen_received} \
         lost_at_receivers={} gen_sent={gen_sent} bridge_rx={rx_datagrams} \
         rx_recvmmsg_per_s={:.0} rx_epoll_wakeups_per_s={:.0} tx_sendto_per_s={:.0} drained={drain} mode={mode:?} \
         shards={shards} present={present} gen_due={} gen_delivered={} gen_missed_ticks={} gen_late_ticks={} \
         received_back={received_back} {verdict}",
        n.div_ceil(ROOM),
        cpu.as_secs_f64() / secs * 100.0,
        gen_cpu_ms as f64 / 10.0 / secs,
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        l.count,
        bridge_sent.saturating_sub(gen_received),
        rx_calls as f64 / secs,
        rx_wakeups as f64 / secs,
        bridge_sent as f64 / secs,
        done.due,
        percent(done.sent, done.due),
        done.missed_ticks,
        done.late_ticks,
    );
    let mut split: Vec<(String, f64)> = threads_after
        .iter()
        .map(|(name, t)| {
            let before = threads_before
                .iter()
                .filter(|(b, _)| b == name)
                .map(|(_, t)| *t)
                .sum::<Duration>();
            (
                name.clone(),
                (*t - before.min(*t)).as_secs_f64() / secs * 100.0,
            )
        })
        .collect();
    split.sort_by(|a, b| b.1.total_cmp(&a.1));
    let split: Vec<String> = split
        .iter()
        .filter(|(_, p)| *p >= 0.5)
        .map(|(name, p)| format!("{name}={p:.1}%"))
        .collect();
    println!("  cpu by thread: {}", split.join(" "));
    drop(sessions);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `part` as a percentage of `whole`, two decimals (`-` when `whole` is 0).
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

/// A size is clean when the generator delivered at least this share of its packets
/// (per mille)...
const CLEAN_DELIVERED_PER_MILLE: u64 = 999;
/// ...the p99 tick lateness is under this...
const CLEAN_P99: Duration = Duration::from_millis(5);
// ...and nothing was lost inside the bridge.

/// The generator's answer to `stop`: `done <received> <sent> <cpu_ms> <due>
/// <missed_ticks> <late_ticks>`, counted since `mark`.
#[derive(Debug, Clone, Copy)]
struct GeneratorDone {
    /// Datagrams the generator received (from the bridge, or the floor's reflector).
    received: u64,
    /// Packets it sent.
    sent: u64,
    /// Its CPU time, ms.
    cpu_ms: u64,
    /// Packets it should have sent: its 20 ms slots in the window × participants.
    due: u64,
    /// Slots it gave up (more than 10 periods behind): due, not sent.
    missed_ticks: u64,
    /// Slots whose packets started going out [`GEN_LATE`] or more after their time.
    late_ticks: u64,
}

impl GeneratorDone {
    fn parse(line: &str) -> Self {
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            line.starts_with("done ") && fields.len() >= 6,
            "generator answered {line:?}"
        );
        Self {
            received: fields[0],
            sent: fields[1],
            cpu_ms: fields[2],
            due: fields[3],
            missed_ticks: fields[4],
            late_ticks: fields[5],
        }
    }

    fn line(&self) -> String {
        format!(
            "done {} {} {} {} {} {}",
            self.received, self.sent, self.cpu_ms, self.due, self.missed_ticks, self.late_ticks
        )
    }
}

/// Whether a size ran clean, and if not why.
#[derive(Debug)]
struct Verdict(Vec<String>);

impl Verdict {
    fn judge(generator: &GeneratorDone, p99: Duration, lost_inside: u64) -> Self {
        let mut why = Vec::new();
        if generator.sent * 1000 < generator.due * CLEAN_DELIVERED_PER_MILLE || generator.due == 0 {
            why.push(format!(
                "delivered_{}<99.9%",
                percent(generator.sent, generator.due)
            ));
        }
        if p99 >= CLEAN_P99 {
            why.push(format!("p99_{:.2}ms>=5ms", ms(p99)));
        }
        if lost_inside > 0 {
            why.push(format!("lost_inside_{lost_inside}>0"));
        }
        Self(why)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            write!(f, "clean=yes")
        } else {
            write!(f, "clean=no why={}", self.0.join(","))
        }
    }
}

/// User + system CPU time of this process.
fn process_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// CPU time per thread name, from /proc/self/task/*/stat (utime + stime, in ticks).
fn thread_cpu() -> Vec<(String, Duration)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out: Vec<(String, Duration)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let t = Duration::from_secs_f64((utime + stime) / tick);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += t,
            None => out.push((name, t)),
        }
    }
    out
}

/// A generator slot is late when its packets start going out this long after its time.
const GEN_LATE: Duration = Duration::from_millis(5);
/// The generator's send period (one packet per participant per slot), ns.
const PERIOD_NS: u64 = 20_000_000;
/// Not set yet (mark, stop).
const UNSET: u64 = u64::MAX;

/// The measured window as the send loop sees it: slots `k` (due at `origin + k × PERIOD`)
/// with `mark <= k × PERIOD < stop` count, whenever they are sent or given up.
#[derive(Debug)]
struct Window {
    origin: Instant,
    /// Nanoseconds since `origin` when `mark` came, or [`UNSET`].
    mark: AtomicU64,
    /// Nanoseconds since `origin` when `stop` came (or stdin closed), or [`UNSET`].
    stop: AtomicU64,
    /// Slots of the window.
    ticks: AtomicU64,
    /// Packets sent in the window's slots.
    sent: AtomicU64,
    /// Slots of the window given up (the loop more than 10 periods behind).
    missed: AtomicU64,
    /// Slots of the window sent [`GEN_LATE`] or more after their time.
    late: AtomicU64,
}

impl Window {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            mark: AtomicU64::new(UNSET),
            stop: AtomicU64::new(UNSET),
            ticks: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn contains(&self, slot: u64) -> bool {
        let at = slot * PERIOD_NS;
        at >= self.mark.load(Ordering::Acquire) && at < self.stop.load(Ordering::Acquire)
    }

    /// Whether the slot is at or after `stop` (the send loop is done).
    fn ended(&self, slot: u64) -> bool {
        slot * PERIOD_NS >= self.stop.load(Ordering::Acquire)
    }
}

/// The generator process: binds sockets, prints their ports, reads the bridge's
/// ports, then sends and receives until told to stop.
fn generator(n: usize) {
    let sockets: Vec<UdpSocket> = (0..n.div_ceil(PER_SOCKET))
        .map(|_| {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let ports: Vec<String> = sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    println!("ports {}", ports.join(" "));
    std::io::stdout().flush().unwrap();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let bridge: Vec<u16> = lines
        .next()
        .unwrap()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(bridge.len(), n);

    let sockets = Arc::new(sockets);
    let stop_receiving = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let window = Arc::new(Window::new());
    let tx = {
        let (sockets, window) = (sockets.clone(), window.clone());
        std::thread::spawn(move || send_loop(&sockets, &bridge, &window))
    };
    let rx = {
        let (sockets, stop, received) = (sockets.clone(), stop_receiving.clone(), received.clone());
        std::thread::spawn(move || receive_loop(&sockets, &stop, &received))
    };
    let mut received_at_mark = 0;
    let mut cpu_at_mark = process_cpu();
    // What was received and the CPU spent between `mark` and `stop`.
    let mut at_stop = None;
    for line in lines {
        match line.unwrap().trim() {
            "mark" => {
                cpu_at_mark = process_cpu();
                received_at_mark = received.load(Ordering::Relaxed);
                window.mark.store(window.now(), Ordering::Release);
            }
            "stop" => {
                window.stop.store(window.now(), Ordering::Release);
                at_stop = Some((
                    received.load(Ordering::Relaxed) - received_at_mark,
                    process_cpu() - cpu_at_mark,
                ));
                break;
            }
            _ => {}
        }
    }
    // Stdin closed without `stop`: end the send loop all the same.
    let _ = window
        .stop
        .compare_exchange(UNSET, window.now(), Ordering::AcqRel, Ordering::Acquire);
    // The send loop ends at its first slot at or after `stop` (within one period),
    // having counted every slot of the window, sent or given up.
    let _ = tx.join();
    if let Some((received, cpu)) = at_stop {
        let ticks = window.ticks.load(Ordering::Acquire);
        let done = GeneratorDone {
            received,
            sent: window.sent.load(Ordering::Acquire),
            cpu_ms: cpu.as_millis() as u64,
            due: ticks * n as u64,
            missed_ticks: window.missed.load(Ordering::Acquire),
            late_ticks: window.late.load(Ordering::Acquire),
        };
        println!("{}", done.line());
        std::io::stdout().flush().unwrap();
        eprintln!(
            "generator: participants={n} due={} sent={} delivered={} ticks={ticks} missed_ticks={} late_ticks={} received={} cpu_ms={}",
            done.due,
            done.sent,
            percent(done.sent, done.due),
            done.missed_ticks,
            done.late_ticks,
            done.received,
            done.cpu_ms,
        );
    }
    stop_receiving.store(true, Ordering::Relaxed);
    let _ = rx.join();
}

/// Every 20 ms, one PCMU packet per participant: sendmmsg per generator socket.
/// Slots are on a fixed grid from the window's origin; when the loop falls more than
/// 10 periods behind it gives up the slots it missed (counted) and resumes at the
/// current one.
fn send_loop(sockets: &[UdpSocket], bridge: &[u16], window: &Window) {
    let n = bridge.len();
    let tone: Vec<u8> = (0..FRAME_SAMPLES)
        .map(|i| {
            let x = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin() * 8000.0;
            Codec::Pcmu.encode(x as i16)
        })
        .collect();
    let mut packets: Vec<[u8; PACKET]> = (0..n)
        .map(|i| {
            let mut p = [0u8; PACKET];
            let talker = i % ROOM < 2;
            for (j, b) in p[12..].iter_mut().enumerate() {
                *b = if talker { tone[j] } else { 0xff };
            }
            p
        })
        .collect();
    let addrs: Vec<Option<SockaddrIn>> = bridge
        .iter()
        .map(|&p| Some(SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p))))
        .collect();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(PER_SOCKET, None);
    let mut seq: u16 = 0;
    let mut slot: u64 = 0;
    loop {
        let due_at = window.origin + Duration::from_nanos(slot * PERIOD_NS);
        let now = Instant::now();
        if due_at > now {
            std::thread::sleep(due_at - now);
        } else if now - due_at > Duration::from_nanos(PERIOD_NS * 10) {
            let current = window.now() / PERIOD_NS;
            for given_up in slot..current {
                if window.contains(given_up) {
                    window.ticks.fetch_add(1, Ordering::AcqRel);
                    window.missed.fetch_add(1, Ordering::AcqRel);
                }
            }
            slot = current;
            continue;
        }
        if window.ended(slot) {
            break;
        }
        let late = due_at.elapsed() >= GEN_LATE;
        for (i, p) in packets.iter_mut().enumerate() {
            RtpHeader {
                marker: seq == 0,
                payload_type: 0,
                sequence: seq,
                timestamp: u32::from(seq) * FRAME_SAMPLES as u32,
                ssrc: 0x1000 + i as u32,
            }
            .write(p)
            .unwrap();
        }
        let mut sent = 0;
        for (g, socket) in sockets.iter().enumerate() {
            let range = g * PER_SOCKET..((g + 1) * PER_SOCKET).min(n);
            let slices: Vec<[std::io::IoSlice<'_>; 1]> = packets[range.clone()]
                .iter()
                .map(|p| [std::io::IoSlice::new(p)])
                .collect();
            let mut done = 0;
            while done < slices.len() {
                match sendmmsg(
                    socket.as_raw_fd(),
                    &mut headers,
                    &slices[done..],
                    &addrs[range.start + done..range.end],
                    [],
                    MsgFlags::empty(),
                ) {
                    Ok(r) => {
                        let k = r.count();
                        if k == 0 {
                            break;
                        }
                        done += k;
                    }
                    Err(_) => break,
                }
            }
            sent += done as u64;
        }
        if window.contains(slot) {
            window.ticks.fetch_add(1, Ordering::AcqRel);
            window.sent.fetch_add(sent, Ordering::AcqRel);
            if late {
                window.late.fetch_add(1, Ordering::AcqRel);
            }
        }
        seq = seq.wrapping_add(1);
        slot += 1;
    }
}

/// Drains the generator sockets with recvmmsg, counting datagrams.
fn receive_loop(sockets: &[UdpSocket], stop: &AtomicBool, received: &AtomicU64) {
    const B: usize = 64;
    let mut buffers = vec![[0u8; 1500]; B];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(B, None);
    while !stop.load(Ordering::Relaxed) {
        let mut got_any = false;
        for socket in sockets {
            loop {
                let mut slices: Vec<[std::io::IoSliceMut<'_>; 1]> = buffers
                    .iter_mut()
                    .map(|b| [std::io::IoSliceMut::new(b)])
                    .collect();
                let k = match recvmmsg(
                    socket.as_raw_fd(),
                    &mut headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(r) => r.count(),
                    Err(_) => 0,
                };
                received.fetch_add(k as u64, Ordering::Relaxed);
                got_any |= k > 0;
                if k < B {
                    break;
                }
            }
        }
        if !got_any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
