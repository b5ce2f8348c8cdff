//! `--devices`: which devices a run's shards go to, and connecting the remote ones.
//!
//! - `N`: N devices of `--backend` (CPU: N replicas on the one CPU device; wgpu: GPUs 0..N).
//! - a list: `cpu`, `wgpu` (the default adapter), `wgpu:I` (discrete GPU I),
//!   `wgpu:integrated:I` (an integrated GPU such as Apple silicon's), `wgpu:virtual:I`,
//!   `wgpu:cpu` (a software adapter such as lavapipe),
//!   `ws://HOST:PORT` (a `qtlab worker`; needs `--token-file` unless the worker takes none).

use qtlab_core::BackendKind;
use qtlab_core::Device;
use qtlab_core::burn::tensor::DeviceKind;

/// One `--devices` entry, before connecting.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DeviceEntry {
    Cpu,
    /// A wgpu adapter: `DefaultDevice` for plain `wgpu`.
    Wgpu(DeviceKind),
    /// A CUDA GPU by index (the `cuda` feature).
    Cuda(usize),
    Remote(String),
}

impl DeviceEntry {
    pub(crate) fn name(&self, i: usize, count: usize) -> String {
        match self {
            DeviceEntry::Cpu if count > 1 => format!("cpu:{i}"),
            DeviceEntry::Cpu => "cpu".into(),
            DeviceEntry::Wgpu(kind) => match kind {
                DeviceKind::DiscreteGpu(k) => format!("wgpu:{k}"),
                DeviceKind::IntegratedGpu(k) => format!("wgpu:integrated:{k}"),
                DeviceKind::VirtualGpu(k) => format!("wgpu:virtual:{k}"),
                DeviceKind::Cpu => "wgpu:cpu".into(),
                _ => "wgpu".into(),
            },
            DeviceEntry::Cuda(k) => format!("cuda:{k}"),
            DeviceEntry::Remote(url) => url.clone(),
        }
    }

    /// The backend that names the run in its record.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            DeviceEntry::Cpu => "cpu",
            DeviceEntry::Wgpu(_) => "wgpu",
            DeviceEntry::Cuda(_) => "cuda",
            DeviceEntry::Remote(_) => "remote",
        }
    }
}

/// Parses `--devices` for `backend`.
pub(crate) fn parse(value: &str, backend: BackendKind) -> Result<Vec<DeviceEntry>, String> {
    if let Ok(n) = value.parse::<usize>() {
        if !(1..=64).contains(&n) {
            return Err(format!("--devices expects 1..=64 or a list, got `{value}`"));
        }
        return Ok((0..n)
            .map(|i| match backend {
                BackendKind::Cpu => DeviceEntry::Cpu,
                BackendKind::Wgpu if n == 1 => DeviceEntry::Wgpu(DeviceKind::DefaultDevice),
                BackendKind::Wgpu => DeviceEntry::Wgpu(DeviceKind::DiscreteGpu(i)),
                #[cfg(feature = "cuda")]
                BackendKind::Cuda => DeviceEntry::Cuda(i),
            })
            .collect());
    }
    value
        .split(',')
        .map(|e| {
            let e = e.trim();
            if e == "cpu" {
                Ok(DeviceEntry::Cpu)
            } else if e == "wgpu" {
                Ok(DeviceEntry::Wgpu(DeviceKind::DefaultDevice))
            } else if let Some(k) = e.strip_prefix("wgpu:") {
                wgpu_kind(k).map(DeviceEntry::Wgpu).ok_or_else(|| {
                    format!(
                        "--devices: `{e}` (expected wgpu:I, wgpu:integrated:I, wgpu:virtual:I \
                         or wgpu:cpu)"
                    )
                })
            } else if let Some(addr) = e.strip_prefix("ws://") {
                let ok = addr
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if ok {
                    Ok(DeviceEntry::Remote(e.to_string()))
                } else {
                    Err(format!("--devices: `{e}` (expected ws://HOST:PORT)"))
                }
            } else if let Some(addr) = e.strip_prefix("remote:") {
                parse(&format!("ws://{addr}"), backend).map(|mut v| v.remove(0))
            } else if e == "cuda" || e.starts_with("cuda:") {
                let k = e.strip_prefix("cuda:").unwrap_or("0");
                let k = k
                    .parse()
                    .map_err(|_| format!("--devices: `{e}` (expected cuda:<index>)"))?;
                if cfg!(feature = "cuda") {
                    Ok(DeviceEntry::Cuda(k))
                } else {
                    Err(format!(
                        "--devices: `{e}`: this qtlab was built without CUDA (build the CLI \
                         with `--features cuda`, docs/scale-out.md)"
                    ))
                }
            } else {
                Err(format!(
                    "--devices: unknown device `{e}` (expected N, cpu, wgpu, wgpu:I or ws://HOST:PORT)"
                ))
            }
        })
        .collect()
}

/// `I`, `integrated:I`, `virtual:I` or `cpu` after `wgpu:`.
fn wgpu_kind(s: &str) -> Option<DeviceKind> {
    let index = |k: &str| k.parse::<usize>().ok();
    match s.split_once(':') {
        None if s == "cpu" => Some(DeviceKind::Cpu),
        None => index(s).map(DeviceKind::DiscreteGpu),
        Some(("integrated", k)) => index(k).map(DeviceKind::IntegratedGpu),
        Some(("virtual", k)) => index(k).map(DeviceKind::VirtualGpu),
        Some(_) => None,
    }
}

/// Reads a credential file: its text, trimmed; an empty or unreadable file is an error.
pub(crate) fn read_token(path: &str) -> Result<String, String> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file `{path}`: {e}"))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(format!("token file `{path}` is empty"));
    }
    Ok(t)
}

/// Connects every entry; a remote that cannot be reached or refuses the credential is an error
/// naming it, before any step runs. A worker adds every device it hosts, in its order
/// (`ws://HOST:PORT#1` names its second).
pub(crate) fn connect(
    entries: &[DeviceEntry],
    token: Option<&str>,
) -> Result<Vec<(Device, String)>, String> {
    let count = entries.len();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let name = e.name(i, count);
        match e {
            DeviceEntry::Remote(url) => {
                let hosted = remote(url, token)?;
                let n = hosted.len();
                out.extend(hosted.into_iter().enumerate().map(|(k, d)| match (n, k) {
                    (1, _) | (_, 0) => (d, name.clone()),
                    _ => (d, format!("{name}#{k}")),
                }));
            }
            _ => out.push((local(e)?, name)),
        }
    }
    Ok(out)
}

/// A device of this machine (not a remote entry).
pub(crate) fn local(e: &DeviceEntry) -> Result<Device, String> {
    Ok(match e {
        DeviceEntry::Cpu => Device::flex(),
        DeviceEntry::Wgpu(DeviceKind::DefaultDevice) => BackendKind::Wgpu.device(),
        DeviceEntry::Wgpu(kind) => Device::wgpu(kind.clone()),
        DeviceEntry::Cuda(k) => cuda(*k)?,
        DeviceEntry::Remote(url) => return Err(format!("{url} is not a device of this machine")),
    })
}

#[cfg(feature = "cuda")]
fn cuda(k: usize) -> Result<Device, String> {
    Ok(Device::cuda(k))
}

#[cfg(not(feature = "cuda"))]
fn cuda(k: usize) -> Result<Device, String> {
    Err(format!("cuda:{k}: this qtlab was built without CUDA"))
}

/// Every device the worker at `url` hosts.
#[cfg(feature = "remote")]
fn remote(url: &str, token: Option<&str>) -> Result<Vec<Device>, String> {
    use qtlab_core::burn::remote::{ConnectError, RemoteHost};
    let mut host = RemoteHost::websocket(url);
    if let Some(t) = token {
        host = host.with_credential(t.to_string());
    }
    match host.devices() {
        Ok(d) => Ok(d.into_iter().collect()),
        Err(ConnectError::Unauthorized) => Err(format!(
            "worker {url} refused the credential (check that --token-file matches the worker's)"
        )),
        Err(ConnectError::Unreachable { reason }) => {
            Err(format!("worker {url} cannot be reached: {reason}"))
        }
        Err(other) => Err(format!("worker {url}: {other}")),
    }
}

#[cfg(not(feature = "remote"))]
fn remote(url: &str, _token: Option<&str>) -> Result<Vec<Device>, String> {
    Err(format!(
        "--devices {url}: this qtlab was built without the `remote` feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lists_and_bad_entries() {
        assert_eq!(
            parse("2", BackendKind::Cpu).unwrap(),
            [DeviceEntry::Cpu, DeviceEntry::Cpu]
        );
        assert_eq!(
            parse("2", BackendKind::Wgpu).unwrap(),
            [
                DeviceEntry::Wgpu(DeviceKind::DiscreteGpu(0)),
                DeviceEntry::Wgpu(DeviceKind::DiscreteGpu(1))
            ]
        );
        let kinds = "wgpu,wgpu:1,wgpu:integrated:0,wgpu:virtual:2,wgpu:cpu";
        let parsed = parse(kinds, BackendKind::Cpu).unwrap();
        assert_eq!(
            parsed,
            [
                DeviceEntry::Wgpu(DeviceKind::DefaultDevice),
                DeviceEntry::Wgpu(DeviceKind::DiscreteGpu(1)),
                DeviceEntry::Wgpu(DeviceKind::IntegratedGpu(0)),
                DeviceEntry::Wgpu(DeviceKind::VirtualGpu(2)),
                DeviceEntry::Wgpu(DeviceKind::Cpu),
            ]
        );
        // Each name reads back as the entry it came from.
        let names: Vec<String> = parsed.iter().map(|e| e.name(0, 5)).collect();
        assert_eq!(names.join(","), kinds);
        assert_eq!(
            parse(
                "cpu,ws://127.0.0.1:4000,remote:10.0.0.2:5000",
                BackendKind::Cpu
            )
            .unwrap(),
            [
                DeviceEntry::Cpu,
                DeviceEntry::Remote("ws://127.0.0.1:4000".into()),
                DeviceEntry::Remote("ws://10.0.0.2:5000".into())
            ]
        );
        for bad in [
            "0",
            "65",
            "tpu",
            "ws://nohost",
            "ws://h:99999",
            "wgpu:x",
            "wgpu:integrated",
            "wgpu:cpu:0",
            "cuda:0",
        ] {
            let e = parse(bad, BackendKind::Cpu).unwrap_err();
            assert!(e.starts_with("--devices"), "{bad}: {e}");
        }
    }
}
