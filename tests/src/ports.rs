//! Local TCP ports for the servers that tests, benchmarks and local runs start as child
//! processes (moto server, `cargo lambda watch`): a free port to give such a server, and a wait
//! until it listens there.
//!
//! A server started in this process should bind `127.0.0.1:0` itself and report the port the
//! system gave it: that leaves no window in which another process can take the port.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How often [`wait_for_port`] tries to connect.
const POLL: Duration = Duration::from_millis(50);

/// A port on 127.0.0.1 that nothing listens on now, picked by the system. It is free when this
/// returns; a process that binds it first wins it.
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()
        .map(|addr| addr.port())
}

/// Nothing accepted a connection on the port within the time allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nothing listened on 127.0.0.1:{port} within {limit:?}")]
pub struct NotListening {
    pub port: u16,
    pub limit: Duration,
}

/// Waits until something accepts connections on 127.0.0.1:`port`, trying every 50 ms for at
/// most `limit`.
///
/// It blocks the calling thread; async code calls it through `tokio::task::spawn_blocking`.
pub fn wait_for_port(port: u16, limit: Duration) -> Result<(), NotListening> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if TcpStream::connect_timeout(&address, left.clamp(POLL, Duration::from_secs(1))).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotListening { port, limit });
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
    }

    #[test]
    fn the_wait_ends_when_a_server_listens() {
        let port = free_port().unwrap();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
            let _ = listener.accept();
        });
        assert_eq!(wait_for_port(port, Duration::from_secs(10)), Ok(()));
        server.join().unwrap();
    }

    #[test]
    fn the_wait_gives_up_after_its_limit_and_names_the_port() {
        let port = free_port().unwrap();
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let err = wait_for_port(port, limit).unwrap_err();
        assert!(started.elapsed() >= limit);
        assert_eq!(err, NotListening { port, limit });
        assert_eq!(
            err.to_string(),
            format!("nothing listened on 127.0.0.1:{port} within 300ms")
        );
    }
}
