//! Ends a run by name when a worker's node goes away without a word.
//!
//! A killed worker resets its connection, and the step that was waiting on it fails at once.
//! A node that loses power or network sends nothing: Burn 0.22.1's WebSocket client sets no
//! read timeout, so the trainer would wait on TCP's own timeouts, many minutes. The watchdog
//! probes each worker's port from a thread of its own, and once one has not answered for
//! `MISSES` probes in a row it ends the process with the worker's name. The main thread may be
//! blocked inside Burn at that moment, so there is nothing to unwind to; checkpoints are written
//! to a temporary file and renamed, so the last one is whole whatever the exit interrupts.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qtlab_core::Device;

/// How often each worker is probed.
const EVERY: Duration = Duration::from_secs(4);
/// How long one probe waits for the TCP handshake: a loaded worker still completes it in the
/// kernel, so only an unreachable one takes this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Failed probes in a row before the run ends (one lost SYN must not end a day-long run).
const MISSES: u32 = 3;

pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    /// The step in progress, for the message.
    pub(crate) step: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

/// The workers among `devices`, once each: `ws://HOST:PORT#k` is device k of `ws://HOST:PORT`.
fn workers(devices: &[(Device, String)]) -> Vec<(String, SocketAddr)> {
    let mut out: Vec<(String, SocketAddr)> = Vec::new();
    for (_, name) in devices {
        let Some(hostport) = name.strip_prefix("ws://") else {
            continue;
        };
        let hostport = hostport.split('#').next().unwrap_or(hostport);
        let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            continue;
        };
        if !out.iter().any(|(_, a)| *a == addr) {
            out.push((format!("ws://{hostport}"), addr));
        }
    }
    out
}

impl Watchdog {
    /// Watches the workers among `devices`; `None` when the run has none. `checkpoint` is
    /// named in the message, so the user knows what to resume from.
    pub(crate) fn start(
        devices: &[(Device, String)],
        checkpoint: Option<String>,
    ) -> Option<Watchdog> {
        let workers = workers(devices);
        if workers.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let step = Arc::new(AtomicUsize::new(0));
        let (stop2, step2) = (stop.clone(), step.clone());
        let handle = std::thread::spawn(move || {
            let mut misses = vec![0u32; workers.len()];
            let mut last = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < EVERY {
                    continue;
                }
                last = Instant::now();
                for (i, (url, addr)) in workers.iter().enumerate() {
                    if TcpStream::connect_timeout(addr, PROBE_TIMEOUT).is_ok() {
                        misses[i] = 0;
                        continue;
                    }
                    misses[i] += 1;
                    if misses[i] >= MISSES && !stop2.load(Ordering::Relaxed) {
                        let secs = (EVERY * (MISSES - 1)).as_secs();
                        let resume = match &checkpoint {
                            Some(p) => format!(
                                "the last checkpoint, {p}, is intact: restart the worker and add \
                                 --resume {p}"
                            ),
                            None => "no --checkpoint was asked for, so the run is lost".into(),
                        };
                        eprintln!(
                            "\ndevice error: worker {url} stopped answering during step {} (no \
                             connection for {secs} s); {resume}",
                            step2.load(Ordering::Relaxed)
                        );
                        std::process::exit(1);
                    }
                }
            }
        });
        Some(Watchdog {
            stop,
            step,
            handle: Some(handle),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workers_are_watched_once_each() {
        let d = || Device::flex();
        let devices = vec![
            (d(), "cpu".to_string()),
            (d(), "ws://127.0.0.1:4000".to_string()),
            (d(), "ws://127.0.0.1:4000#1".to_string()),
            (d(), "ws://127.0.0.1:4001".to_string()),
        ];
        let w = workers(&devices);
        let urls: Vec<&str> = w.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["ws://127.0.0.1:4000", "ws://127.0.0.1:4001"]);
        assert!(Watchdog::start(&devices[..1], None).is_none());
    }
}
