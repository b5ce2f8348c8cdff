//! Ends a run by name when a worker's node goes away without a word.
//!
//! A killed worker resets its connection, and the step that was waiting on it fails at once.
//! A node that loses power or network sends nothing. Burn 0.22.1's WebSocket connections use
//! TCP keepalive (10 s idle, then 4 probes 5 s apart), which notices a dead peer in about 30 s
//! only while the connection is idle; with a request unacknowledged in flight, TCP retransmits
//! for many minutes instead. So the watchdog probes each worker's port from a thread of its
//! own, and once one has refused `MISSES` probes in a row, with no step finished meanwhile, it
//! ends the process with the worker's name. The main thread may be blocked inside Burn at that
//! moment, so there is nothing to unwind to; checkpoints are written to a temporary file and
//! renamed, so the last one is whole whatever the exit interrupts. The `--out` record is not
//! written; the checkpoint holds the record so far.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qtlab_core::Device;
use qtlab_core::train::{worker_answers, worker_of};

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

/// The workers among `devices`, once each, with their addresses.
fn workers(devices: &[(Device, String)]) -> Vec<(String, Vec<SocketAddr>)> {
    let mut out: Vec<(String, Vec<SocketAddr>)> = Vec::new();
    for (url, addrs) in devices.iter().filter_map(|(_, name)| worker_of(name)) {
        if !out.iter().any(|(u, _)| *u == url) {
            out.push((url, addrs));
        }
    }
    out
}

/// Whether `path` holds a checkpoint of this run: one it wrote (the file changed since the run
/// began) or the one it resumed from. A stale file of an earlier run is neither.
#[derive(Clone)]
pub(crate) struct CheckpointFile {
    pub(crate) path: String,
    at_start: Option<std::time::SystemTime>,
    resumed_from_it: bool,
}

impl CheckpointFile {
    pub(crate) fn new(path: &str, resume: Option<&str>) -> CheckpointFile {
        CheckpointFile {
            path: path.to_string(),
            at_start: modified(path),
            resumed_from_it: resume == Some(path),
        }
    }

    pub(crate) fn of_this_run(&self) -> bool {
        match modified(&self.path) {
            None => false,
            now => self.resumed_from_it || now != self.at_start,
        }
    }

    /// What to tell a user whose run stopped on a lost device.
    pub(crate) fn advice(&self) -> String {
        let p = &self.path;
        if self.of_this_run() {
            format!("the last checkpoint, {p}, is intact: restart the worker and add --resume {p}")
        } else {
            format!("no checkpoint of this run was written to {p} yet")
        }
    }
}

fn modified(path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Watchdog {
    /// Watches the workers among `devices`; `None` when the run has none. `checkpoint` is
    /// named in the message, so the user knows what to resume from.
    pub(crate) fn start(
        devices: &[(Device, String)],
        checkpoint: Option<CheckpointFile>,
    ) -> Option<Watchdog> {
        let workers = workers(devices);
        if workers.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let step = Arc::new(AtomicUsize::new(0));
        let (stop2, step2) = (stop.clone(), step.clone());
        let handle = std::thread::spawn(move || {
            // Per worker: failed probes in a row, and the step when the first of them failed.
            let mut misses = vec![(0u32, 0usize); workers.len()];
            let mut last = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < EVERY {
                    continue;
                }
                last = Instant::now();
                let now = step2.load(Ordering::Relaxed);
                for (i, (url, addrs)) in workers.iter().enumerate() {
                    // Steps still finishing mean the open connections work, whatever a new
                    // connection meets (a SYN limit, a firewall): only silence and refusal
                    // together end the run.
                    if worker_answers(addrs, PROBE_TIMEOUT)
                        || (misses[i].0 > 0 && now != misses[i].1)
                    {
                        misses[i] = (0, now);
                        continue;
                    }
                    if misses[i].0 == 0 {
                        misses[i].1 = now;
                    }
                    misses[i].0 += 1;
                    if misses[i].0 >= MISSES && !stop2.load(Ordering::Relaxed) {
                        let secs = (EVERY * (MISSES - 1)).as_secs();
                        let resume = match &checkpoint {
                            Some(c) => c.advice(),
                            None => "no --checkpoint was asked for, so the run is lost".into(),
                        };
                        eprintln!(
                            "\ndevice error: worker {url} stopped answering during step {now} (no \
                             connection and no step finished for {secs} s); {resume}"
                        );
                        let _ = std::io::Write::flush(&mut std::io::stderr());
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
        assert!(w.iter().all(|(_, a)| a.len() == 1));
        assert!(Watchdog::start(&devices[..1], None).is_none());
    }
}
