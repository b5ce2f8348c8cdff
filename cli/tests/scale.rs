//! Scale-out end to end, on this machine's CPU: `qtlab worker` processes on 127.0.0.1 host the
//! devices, a trainer drives them through Burn's remote backend. Two workers agree with one
//! local device, a wrong credential is refused before any tensor moves, a worker killed mid-run
//! ends the run with its name and leaves a checkpoint that a resume on fresh workers finishes.
#![cfg(feature = "remote")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough that the kill lands mid-run, short enough to finish on resume.
const STEPS: &str = "150";
const SPEC: &str =
    "model=bert&layers=1&d=16&heads=2&ffn=32&seq=16&batch=8&eval_batches=2&eval_every=0";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qtlab"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("qtlab-workers-{}-{name}", std::process::id()))
}

/// A worker on 127.0.0.1:0; killed when dropped.
struct Worker {
    child: Child,
    url: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(token_file: Option<&std::path::Path>) -> Worker {
    worker_with(token_file, &[])
}

fn worker_with(token_file: Option<&std::path::Path>, extra: &[&str]) -> Worker {
    let mut cmd = bin();
    cmd.args(["worker", "--listen", "127.0.0.1:0", "--backend", "cpu"]);
    cmd.args(extra);
    if let Some(t) = token_file {
        cmd.arg("--token-file").arg(t);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker prints its address within 30 s");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();
    Worker { child, url }
}

fn token(name: &str, text: &str) -> std::path::PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs a trainer to its end (bounded), returning (exit code, stderr, final eval loss).
fn train(args: &[&str], limit: Duration) -> (i32, String, Option<f64>) {
    // One record file per call: tests run in parallel, and each reads back its own.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = tmp(&format!("rec-{n}.json"));
    let _ = std::fs::remove_file(&out);
    let mut child = bin()
        .args(["train", "--spec", SPEC, "--quiet", "--out"])
        .arg(&out)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("trainer {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let loss = std::fs::read_to_string(&out).ok().and_then(|j| {
        let v: serde_json::Value = serde_json::from_str(&j).ok()?;
        v["eval"]["loss"].as_f64()
    });
    (status.code().unwrap_or(-1), err, loss)
}

/// A trainer on `devices` that checkpoints to `ck` every 2 steps; returns once the first
/// checkpoint is on disk, so a fault injected next lands mid-run.
fn checkpointing_trainer(
    steps: &str,
    devices: &str,
    token_file: &str,
    ck: &std::path::Path,
) -> Child {
    let trainer = bin()
        .args(["train", "--spec", SPEC, "--quiet", "--steps", steps])
        .args([
            "--devices",
            devices,
            "--token-file",
            token_file,
            "--checkpoint",
        ])
        .arg(ck)
        .args(["--checkpoint-every", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ck.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    trainer
}

/// Waits for `trainer` to exit, at most 30 s after `fault`; its status and stderr.
fn stops_within_30_s(trainer: &mut Child, fault: &str) -> (std::process::ExitStatus, String) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = trainer.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = trainer.kill();
            panic!("the trainer did not stop within 30 s of {fault}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut trainer.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn two_loopback_workers_or_one_with_two_devices_agree_with_local_devices() {
    let tf = token("tok-agree", "s3cret\n");
    let (a, b) = (worker(Some(&tf)), worker(Some(&tf)));
    let list = format!("{},{}", a.url, b.url);
    let t = tf.to_str().unwrap();
    let limit = Duration::from_secs(300);
    let (code, err, remote) = train(
        &["--steps", "40", "--devices", &list, "--token-file", t],
        limit,
    );
    assert_eq!(code, 0, "{err}");
    // One worker hosting two devices is the same run again: the trainer takes both.
    let both = worker_with(Some(&tf), &["--devices", "2"]);
    let (code, err, one_worker) = train(
        &["--steps", "40", "--devices", &both.url, "--token-file", t],
        limit,
    );
    assert_eq!(code, 0, "{err}");
    let (code, err, local2) = train(&["--steps", "40", "--devices", "2"], limit);
    assert_eq!(code, 0, "{err}");
    let (code, err, local1) = train(&["--steps", "40", "--threads", "1"], limit);
    assert_eq!(code, 0, "{err}");
    let (remote, local2, local1) = (remote.unwrap(), local2.unwrap(), local1.unwrap());
    let one_worker = one_worker.unwrap();
    // The same shards summed in the same order: two workers and one worker hosting two devices
    // give the same bits. In-process devices run Burn's ops directly instead of through its
    // remote protocol, which rounds a few of them differently: close, not equal.
    assert_eq!(
        one_worker.to_bits(),
        remote.to_bits(),
        "1 worker with 2 devices: final eval loss {one_worker} vs {remote} on 2 workers"
    );
    assert!(
        (remote - local2).abs() <= 1e-5 * local2.abs(),
        "2 workers: final eval loss {remote} vs {local2} on --devices 2"
    );
    // One shard rounds differently from two; the bound is 1e-3 relative.
    assert!(
        (local1 - local2).abs() <= 1e-3 * local2.abs(),
        "1 device, 1 shard: final eval loss {local1} vs {local2} on --devices 2"
    );
}

#[test]
fn a_wrong_or_missing_credential_is_refused_by_name() {
    let good = token("tok-good", "right");
    let bad = token("tok-bad", "wrong");
    let w = worker(Some(&good));
    let limit = Duration::from_secs(60);
    let (code, err, _) = train(
        &[
            "--steps",
            "2",
            "--devices",
            &w.url,
            "--token-file",
            bad.to_str().unwrap(),
        ],
        limit,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused the credential") && err.contains(&w.url),
        "{err}"
    );
    let (code, err, _) = train(&["--steps", "2", "--devices", &w.url], limit);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused the credential"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A worker refuses to start on a non-loopback address without one, and on an empty file.
    let out = bin()
        .args(["worker", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("without a credential"), "{e}");
    let empty = token("tok-empty", " \n");
    let out = bin()
        .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
    // Burn serves one backend per server: a mixed list is refused before it claims to listen.
    let out = bin()
        .args(["worker", "--listen", "127.0.0.1:0", "--devices", "cpu,wgpu"])
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("not both") && !o.contains("listening"), "{o}{e}");
}

#[test]
fn an_unreachable_worker_is_a_named_error_not_a_hang() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let (code, err, _) = train(
        &["--steps", "2", "--devices", &url],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot be reached") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn a_killed_worker_stops_the_run_by_name_and_its_checkpoint_finishes_on_new_workers() {
    let tf = token("tok-kill", "k");
    let t = tf.to_str().unwrap();
    let ck = tmp("kill.ckpt");
    let _ = std::fs::remove_file(&ck);
    let (a, mut b) = (worker(Some(&tf)), worker(Some(&tf)));
    let list = format!("{},{}", a.url, b.url);
    let mut trainer = checkpointing_trainer(STEPS, &list, t, &ck);
    std::thread::sleep(Duration::from_millis(300));
    b.child.kill().unwrap();
    let (status, err) = stops_within_30_s(&mut trainer, "its worker dying");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&b.url), "names the worker: {err}");
    assert!(!err.contains(&a.url), "blames the live worker too: {err}");
    assert!(err.contains("--resume"), "says how to go on: {err}");

    // The checkpoint is whole, and a run on two fresh workers finishes from it.
    let c = qtlab_core::checkpoint::Checkpoint::load(&ck).expect("an intact checkpoint");
    let at = c.header.steps_done;
    assert!(at >= 2 && at % 2 == 0, "{at}");
    let (c1, c2) = (worker(Some(&tf)), worker(Some(&tf)));
    let list = format!("{},{}", c1.url, c2.url);
    let (code, err, resumed) = train(
        &[
            "--steps",
            STEPS,
            "--devices",
            &list,
            "--token-file",
            t,
            "--resume",
            ck.to_str().unwrap(),
        ],
        Duration::from_secs(240),
    );
    assert_eq!(code, 0, "{err}");
    // And it ends where the run would have ended had no worker died: the same bits.
    let (code, err, whole) = train(
        &["--steps", STEPS, "--devices", &list, "--token-file", t],
        Duration::from_secs(240),
    );
    assert_eq!(code, 0, "{err}");
    let (resumed, whole) = (resumed.unwrap(), whole.unwrap());
    assert!(resumed.is_finite(), "{resumed}");
    assert_eq!(
        resumed.to_bits(),
        whole.to_bits(),
        "resumed from step {at}: final eval loss {resumed} vs {whole} uninterrupted"
    );
}

/// A TCP relay in front of a worker whose plug can be pulled: it stops relaying and accepting
/// but holds its sockets open, as a node that loses power leaves its peers' connections (no
/// reset, no error, just silence).
struct Relay {
    url: String,
    pulled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn new(target: &str) -> Relay {
        use std::sync::atomic::Ordering;
        let target: std::net::SocketAddr = target.strip_prefix("ws://").unwrap().parse().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = pulled.clone();
        std::thread::spawn(move || {
            while !p.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(target) else {
                            continue;
                        };
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let p = p.clone();
                            std::thread::spawn(move || pipe(from, to, &p));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener closes here: new connections are refused, the old ones stay open.
        });
        Relay { url, pulled }
    }

    fn pull_the_plug(&self) {
        self.pulled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies `from` to `to` until the plug is pulled; after that reads and drops, holding both
/// sockets open for the life of the test process.
fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    pulled: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                // The other side hung up (a trainer that ended): keep `to` open anyway.
                std::thread::sleep(Duration::from_secs(3600));
            }
            Ok(n) if !pulled.load(std::sync::atomic::Ordering::Relaxed) => {
                if to.write_all(&buf[..n]).is_err() {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Ok(_) => {}
        }
    }
}

#[test]
fn a_worker_that_goes_silent_without_a_reset_stops_the_run_by_name() {
    let tf = token("tok-silent", "q");
    let t = tf.to_str().unwrap();
    let ck = tmp("silent.ckpt");
    let _ = std::fs::remove_file(&ck);
    let (a, b) = (worker(Some(&tf)), worker(Some(&tf)));
    let relay = Relay::new(&b.url);
    let list = format!("{},{}", a.url, relay.url);
    let mut trainer = checkpointing_trainer("100000", &list, t, &ck);
    relay.pull_the_plug();
    let (status, err) = stops_within_30_s(&mut trainer, "its worker going silent");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("worker {} stopped answering", relay.url)),
        "the watchdog names the worker: {err}"
    );
    assert!(!err.contains(&a.url), "blames the live worker too: {err}");
    assert!(err.contains("--resume"), "says how to go on: {err}");
    qtlab_core::checkpoint::Checkpoint::load(&ck).expect("an intact checkpoint");
    drop(b);
}
