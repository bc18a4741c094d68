//! Media load benchmark: N simultaneous G.711 participants in conferences of 10 on
//! one [`MediaEngine`], fed over loopback by a packet generator running as a
//! separate process (so its CPU is not counted as the bridge's).
//!
//! ```text
//! cargo run --release -p dialbridge-media --example media_load -- 1000 [--seconds 20] [--warmup 5] [--no-drain] [--events-only] [--gen-prio P]
//! ```
//!
//! The generator binds one UDP socket per 100 participants (an SBC's media ports),
//! sends every participant's 20 ms PCMU packet each tick with `sendmmsg` (two
//! talkers per conference, the rest silence) and counts what the bridge sends back
//! with `recvmmsg`. The bridge side opens N sessions, puts them in rooms of 10 and,
//! like the server's call tasks, drains every inbound queue in a tokio task
//! (`--events-only`: audio is mixed but not queued, as for a participant whose DTMF
//! comes as RFC 4733 events; `--no-drain`: nobody reads the queues).
//!
//! Reported over the measured window: bridge CPU (getrusage, and per thread from
//! /proc/self/task), tick lateness p50/p99/max, packets lost inside the bridge
//! (send drops, inbound queue overflows), packets lost at the receivers (sent by
//! the bridge but not received by the generator), receive syscalls per second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{Codec, FRAME_SAMPLES, MediaEngine, RtpSession};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage, recvmmsg, sendmmsg};

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
    let audio_to_consumers = !args.iter().any(|a| a == "--events-only");
    let gen_prio = args
        .iter()
        .position(|a| a == "--gen-prio")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<u32>().ok());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bridge(
        n,
        seconds,
        warmup,
        drain,
        audio_to_consumers,
        gen_prio,
    ));
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
    audio_to_consumers: bool,
    gen_prio: Option<u32>,
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

    let engine = MediaEngine::new(Ipv4Addr::LOCALHOST.into(), 20_000..=59_998).unwrap();
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
        s.set_deliver_audio(audio_to_consumers);
        let inbound = s.take_inbound().unwrap();
        if drain {
            let consumed = consumed.clone();
            tokio::spawn(async move {
                let mut inbound = inbound;
                while inbound.recv().await.is_some() {
                    consumed.fetch_add(1, Ordering::Relaxed);
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

    // The measured window.
    let sent_before: u64 = sessions.iter().map(|s| s.stats().sent).sum();
    let stats_before = engine.stats();
    engine.reset_clock_stats();
    let threads_before = thread_cpu();
    let cpu_before = process_cpu();
    writeln!(to_gen, "mark").unwrap();
    to_gen.flush().unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    writeln!(to_gen, "stop").unwrap();
    to_gen.flush().unwrap();
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu_before;
    let threads_after = thread_cpu();
    let stats = engine.stats();
    let sent_after: u64 = sessions.iter().map(|s| s.stats().sent).sum();
    line.clear();
    from_gen.read_line(&mut line).unwrap();
    let mut fields = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().unwrap());
    let (gen_received, gen_sent) = (fields.next().unwrap(), fields.next().unwrap());
    let gen_cpu_ms = fields.next().unwrap();
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
    println!(
        "participants={n} rooms={} window={secs:.1}s cpu={:.1}% generator_cpu={:.1}% loadavg={load} p50={:.2}ms p99={:.2}ms max={:.2}ms \
         ticks={} skipped_ticks={skipped} lost_inside={lost_inside} bridge_sent={bridge_sent} gen_received={gen_received} \
         lost_at_receivers={} gen_sent={gen_sent} bridge_rx={rx_datagrams} \
         rx_recvmmsg_per_s={:.0} rx_epoll_wakeups_per_s={:.0} tx_sendto_per_s={:.0} drained={drain} audio_to_consumers={audio_to_consumers}",
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
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let tx = {
        let (sockets, stop, sent) = (sockets.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || send_loop(&sockets, &bridge, &stop, &sent))
    };
    let rx = {
        let (sockets, stop, received) = (sockets.clone(), stop.clone(), received.clone());
        std::thread::spawn(move || receive_loop(&sockets, &stop, &received))
    };
    let mut marks = (0, 0);
    let mut cpu_at_mark = process_cpu();
    for line in lines {
        match line.unwrap().trim() {
            "mark" => {
                cpu_at_mark = process_cpu();
                marks = (
                    received.load(Ordering::Relaxed),
                    sent.load(Ordering::Relaxed),
                )
            }
            "stop" => {
                let r = received.load(Ordering::Relaxed) - marks.0;
                let s = sent.load(Ordering::Relaxed) - marks.1;
                let cpu = process_cpu() - cpu_at_mark;
                println!("done {r} {s} {}", cpu.as_millis());
                std::io::stdout().flush().unwrap();
                break;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tx.join();
    let _ = rx.join();
}

/// Every 20 ms, one PCMU packet per participant: sendmmsg per generator socket.
fn send_loop(sockets: &[UdpSocket], bridge: &[u16], stop: &AtomicBool, sent: &AtomicU64) {
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
    let period = Duration::from_millis(20);
    let mut next = Instant::now();
    let mut seq: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
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
            sent.fetch_add(done as u64, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period * 10 {
            next = now;
        }
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
