//! A TCP proxy of the tests' own in front of Apache Kafka (`scripts/kafka.sh start proxied`
//! advertises its port), for the network faults of the soak: a stall (nothing crosses, the
//! connections stay open: a blackholed route), a slow link (every chunk 150 ms late), and a cut
//! (every connection reset at once: a firewall or NAT that forgot them). Threads and std only: two
//! pumps per connection, each looking at the mode between reads.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the bytes crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Pass = 0,
    /// Nothing is read or written: the peers' buffers fill and their requests time out.
    Stall = 1,
    /// Every chunk waits 150 ms.
    Slow = 2,
}

pub struct Proxy {
    pub port: u16,
    link: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on 127.0.0.1:`port` and forwards each connection to `target`.
    pub fn start(port: u16, target: &str) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the proxy's port");
        let link = Arc::new(AtomicU8::new(Link::Pass as u8));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (l, c, s, target) = (link.clone(), conns.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(&target) else { continue }; // the broker is down
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                {
                    let mut all = c.lock().unwrap();
                    all.retain(|s| s.peer_addr().is_ok());
                    all.push(client.try_clone().unwrap());
                    all.push(upstream.try_clone().unwrap());
                }
                for (from, to) in [(client.try_clone().unwrap(), upstream.try_clone().unwrap()), (upstream, client)] {
                    let (l, s) = (l.clone(), s.clone());
                    std::thread::spawn(move || pump(from, to, &l, &s));
                }
            }
        });
        Proxy { port, link, conns, stop }
    }

    pub fn set(&self, link: Link) {
        self.link.store(link as u8, Ordering::SeqCst);
    }

    /// Resets every open connection (SO_LINGER 0: the peers get an RST).
    pub fn reset(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: a valid socket descriptor, and a linger struct of the size given.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.reset();
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

/// Copies `from` to `to` as the link allows, until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, link: &AtomicU8, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match link.load(Ordering::SeqCst) {
            1 => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            2 => std::thread::sleep(Duration::from_millis(150)),
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
