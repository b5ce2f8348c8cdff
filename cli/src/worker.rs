//! `qtlab worker`: hosts this machine's device for trainers elsewhere, through Burn's remote
//! backend (burn-remote's WebSocket transport). The trainer keeps the autodiff graph and the
//! optimizer; the worker runs the tensor operations it is sent. One worker hosts all of a
//! node's devices (`--devices wgpu:0,wgpu:1`); a trainer that lists the worker gets them all.

use crate::devices::read_token;

/// Whether `host` is a loopback address, where a worker may run without a credential.
fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

pub(crate) fn cmd_worker(args: &[String]) -> Result<(), String> {
    let (mut listen, mut backend, mut token_file) = (None, "cpu".to_string(), None);
    let mut devices_arg = None;
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("flag `{}` needs a value", args[i]))?
            .clone();
        match args[i].as_str() {
            "--listen" => listen = Some(value),
            "--backend" => backend = value,
            "--token-file" => token_file = Some(value),
            "--devices" => devices_arg = Some(value),
            other => {
                return Err(format!(
                    "qtlab worker: unknown argument `{other}` (usage: qtlab worker --listen HOST:PORT [--backend cpu|wgpu] [--devices N|LIST] [--token-file F])"
                ));
            }
        }
        i += 2;
    }
    let listen = listen.ok_or("qtlab worker needs --listen HOST:PORT (e.g. 127.0.0.1:4000)")?;
    let backend: qtlab_core::BackendKind = backend.parse()?;
    let entries = crate::devices::parse(devices_arg.as_deref().unwrap_or("1"), backend)?;
    // Burn serves one backend per server: every CubeCL runtime (wgpu, CUDA) is one, Flex another.
    let cpu = |e: &crate::devices::DeviceEntry| matches!(e, crate::devices::DeviceEntry::Cpu);
    if entries.iter().any(cpu) && !entries.iter().all(cpu) {
        return Err(
            "qtlab worker --devices: a worker serves CPU devices or GPU ones, not both; start \
             one worker for each"
                .into(),
        );
    }
    let devices = (entries.iter())
        .map(|e| crate::devices::local(e).map_err(|m| format!("qtlab worker --devices: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| e.name(i, entries.len()))
        .collect();
    let addr: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&listen)
        .map_err(|e| format!("--listen `{listen}`: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen `{listen}` names no address"))?;
    let token = token_file.as_deref().map(read_token).transpose()?;
    if token.is_none() && !is_loopback(&addr) {
        return Err(format!(
            "refusing to listen on {addr} without a credential: anyone who reaches it could run \
             work on this machine; pass --token-file F (and the same file to the trainer), or \
             listen on 127.0.0.1"
        ));
    }
    serve(addr, devices, &names.join(","), token)
}

#[cfg(feature = "remote")]
fn serve(
    addr: std::net::SocketAddr,
    devices: Vec<qtlab_core::Device>,
    names: &str,
    token: Option<String>,
) -> Result<(), String> {
    use qtlab_core::burn::server::{RemoteServer, TokenAuthorizer, WebSocketTransport};
    use std::io::Write;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut server = RemoteServer::new(devices);
    if let Some(t) = token {
        server = server.with_authorizer(
            TokenAuthorizer::new(t).map_err(|_| "the token file is empty".to_string())?,
        );
    }
    // The address on stdout, flushed, is how a script or a test learns a port-0 worker's port.
    println!("listening on ws://{bound} ({names})");
    let _ = std::io::stdout().flush();
    server
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| format!("worker on {bound}: {e}"))
}

#[cfg(not(feature = "remote"))]
fn serve(
    _addr: std::net::SocketAddr,
    _devices: Vec<qtlab_core::Device>,
    _names: &str,
    _token: Option<String>,
) -> Result<(), String> {
    Err("this qtlab was built without the `remote` feature, so it cannot be a worker".into())
}
