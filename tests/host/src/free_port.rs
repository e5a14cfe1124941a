//! Starting a server process on ports picked free: a port is found free by binding it and
//! let go for the process to bind, so another process may take it in between. A start that
//! fails for that reason is tried again on new ports (CI saw it once, with tests starting
//! servers side by side); any other failure is the caller's at once. sqld and chromedriver
//! (the browser tests) start this way.

use std::fmt::Display;
use std::net::TcpListener;

/// How a server says a port is taken (`std::io::ErrorKind::AddrInUse`; sqld and chromedriver
/// both print it so).
const ADDRESS_IN_USE: &str = "Address already in use";

/// Starts tried before a taken port is the caller's failure.
const ATTEMPTS: usize = 5;

/// `N` distinct free loopback ports: each listener is held until all are known.
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Runs `start` (which picks its ports with [`free_ports`]) until it succeeds, fails for
/// another reason than a taken port, or has been tried [`ATTEMPTS`] times.
pub fn start_on_free_ports<T, E: Display>(mut start: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(error) if attempt < ATTEMPTS && format!("{error:#}").contains(ADDRESS_IN_USE) => {
                attempt += 1;
            }
            result => return result,
        }
    }
}
