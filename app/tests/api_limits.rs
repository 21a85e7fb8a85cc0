//! The API listener's limits against real sockets: slow or silent clients are cut off at the header deadline, and
//! connections beyond the bound are closed at once while the ones within it are served.

// Helpers outside #[test] functions panic on failure by design: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mora::api::{ApiConfig, Backend, DemoBackend, Limits, Reloader, Server};

fn server(limits: Limits) -> Server {
    let engine = mora::config::load(None).unwrap().engine;
    let backend: Arc<dyn Backend> = Arc::new(DemoBackend {
        workers: Vec::new(),
        engine: Arc::new(Mutex::new(Arc::new(engine))),
    });
    let cfg = ApiConfig {
        listen: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    };
    let router = mora::api::router(backend, &cfg, Reloader::new(None), None, None).unwrap();
    Server::start_with("127.0.0.1:0", router, limits).unwrap()
}

/// Whether the server closed `s` (end of stream or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response (408) before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn slow_and_silent_clients_are_cut_off_at_the_header_deadline() {
    let srv = server(Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 64,
    });
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                .unwrap(); // never the blank line
            s
        })
        .collect();
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "slow client {i} still open"
        );
    }
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "silent client still open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at the deadline, not later: {:?}",
        started.elapsed()
    );
    assert!(
        healthz(srv.addr).starts_with("HTTP/1.1 200"),
        "still serving"
    );
    srv.stop();
}

#[test]
fn connections_beyond_the_bound_are_closed_and_the_others_served() {
    let srv = server(Limits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 4,
    });
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // accepted, each holding a permit
    let mut extra = TcpStream::connect(srv.addr).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(3)),
        "a fifth connection is closed at once"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        healthz(srv.addr).starts_with("HTTP/1.1 200"),
        "served again once below the bound"
    );
    srv.stop();
}
