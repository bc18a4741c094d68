//! The test servers start, stop by PID and start again on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;

use dialbridge_testkit::servers::{Postgres, Redis};

fn redis_ping(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 16];
    let n = stream.read(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
}

#[test]
fn redis_answers_stops_and_comes_back() {
    let mut redis = Redis::start();
    assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");
    redis.stop();
    assert!(
        redis_ping(redis.port()).is_err(),
        "a stopped server still answers"
    );
    redis.resume();
    assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");
}

#[test]
fn postgres_accepts_stops_and_comes_back() {
    let mut postgres = Postgres::start();
    assert!(TcpStream::connect(("127.0.0.1", postgres.port())).is_ok());
    postgres.stop();
    assert!(TcpStream::connect(("127.0.0.1", postgres.port())).is_err());
    postgres.resume();
    let ready = std::process::Command::new("pg_isready")
        .args(["-h", "127.0.0.1", "-p", &postgres.port().to_string()])
        .status()
        .unwrap();
    assert!(ready.success(), "{}", postgres.url());
}
