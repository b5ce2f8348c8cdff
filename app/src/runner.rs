//! The non-reactive side of the app: the GPU probe and the runs (the async loop that advances
//! them is in `drive.rs`).
//!
//! Runs hold device tensors and are neither `Send` nor cheap to clone, so they live in a
//! thread-local engine outside Leptos' signals. The loop takes a run out of the engine while
//! it awaits a readback and puts it back afterwards; a reset bumps the generation, so a loop
//! that wakes up into a newer generation drops what it holds and stops.

use std::cell::RefCell;

use js_sys::{Function, Promise, Reflect};
use qtlab_core::Device;
use qtlab_core::dataset::RunData;
use qtlab_core::driver::Run;
use qtlab_core::spec::RunSpec;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Why the app is not on WebGPU, in the four cases a user can act on differently.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuProblem {
    /// `navigator.gpu` is missing: the browser has no WebGPU, or it is switched off.
    NoApi,
    /// `requestAdapter()` gave null: WebGPU exists but no usable GPU (blocklisted, headless...).
    NoAdapter,
    /// The adapter refused a device, or Burn could not set one up.
    DeviceFailed(String),
    /// The device computed a known matmul and gradient wrongly.
    SelfTestWrong(String),
    /// The link asked for the CPU (`backend=cpu`).
    ChosenCpu,
    /// The GPU device was lost (or reported an error) during the session.
    Lost(String),
}

impl GpuProblem {
    pub fn message(&self) -> String {
        match self {
            GpuProblem::NoApi => "This browser exposes no WebGPU (navigator.gpu is missing). Training runs on the CPU in WebAssembly, which is slower. Use a current Chrome, Edge or Safari, or in Firefox enable dom.webgpu.enabled.".into(),
            GpuProblem::NoAdapter => "WebGPU is present but offered no GPU adapter (requestAdapter returned null). The GPU may be blocklisted; try chrome://flags/#enable-unsafe-webgpu. Training runs on the CPU meanwhile.".into(),
            GpuProblem::DeviceFailed(e) => format!("The GPU adapter refused to create a device ({e}). Training runs on the CPU."),
            GpuProblem::SelfTestWrong(e) => format!("The GPU failed a tiny self-test ({e}), so its results cannot be trusted. Training runs on the CPU."),
            GpuProblem::ChosenCpu => "The CPU backend was chosen (backend=cpu in the link). Remove it to use WebGPU.".into(),
            GpuProblem::Lost(e) => format!("The GPU device was lost ({e}). The curves so far are kept; continue on the CPU to train this run again there."),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            GpuProblem::NoApi => "no-webgpu",
            GpuProblem::NoAdapter => "no-adapter",
            GpuProblem::DeviceFailed(_) => "device-failed",
            GpuProblem::SelfTestWrong(_) => "self-test",
            GpuProblem::ChosenCpu => "chosen-cpu",
            GpuProblem::Lost(_) => "device-lost",
        }
    }
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            Reflect::get(&e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn call_promise(obj: &JsValue, method: &str) -> Result<JsValue, String> {
    let f: Function = Reflect::get(obj, &method.into())
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| format!("{method} is not a function"))?;
    let p: Promise = f
        .call0(obj)
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| format!("{method} did not return a promise"))?;
    JsFuture::from(p).await.map_err(js_err)
}

/// A readable name for the adapter, from `adapter.info` where the browser has it.
fn adapter_name(adapter: &JsValue) -> String {
    let info = Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |k: &str| {
        Reflect::get(&info, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    [field("vendor"), field("architecture"), field("description")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Finds WebGPU step by step so each failure gets its own message, then sets Burn up and checks
/// a known matmul and gradient on it. Returns the device and the adapter's name.
pub async fn probe_gpu() -> Result<(Device, String), GpuProblem> {
    let nav: JsValue = web_sys::window()
        .ok_or(GpuProblem::NoApi)?
        .navigator()
        .into();
    let gpu = Reflect::get(&nav, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err(GpuProblem::NoApi);
    }
    let adapter = call_promise(&gpu, "requestAdapter")
        .await
        .map_err(GpuProblem::DeviceFailed)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err(GpuProblem::NoAdapter);
    }
    let name = adapter_name(&adapter);
    let probe_device = call_promise(&adapter, "requestDevice")
        .await
        .map_err(GpuProblem::DeviceFailed)?;
    if let Ok(destroy) = Reflect::get(&probe_device, &"destroy".into())
        .and_then(|f| f.dyn_into::<Function>().map_err(JsValue::from))
    {
        let _ = destroy.call0(&probe_device);
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| GpuProblem::DeviceFailed(format!("{e:?}")))?;
    // wgpu's default handler panics on any uncaptured error, which in wasm kills the page; a lost
    // device or a failed submission is instead recorded, and the training loop stops on it.
    setup
        .device
        .set_device_lost_callback(|reason, msg| mark_lost(format!("{reason:?}: {msg}")));
    setup
        .device
        .on_uncaptured_error(std::sync::Arc::new(|e| mark_lost(e.to_string())));
    self_test(&device)
        .await
        .map_err(GpuProblem::SelfTestWrong)?;
    Ok((device, name))
}

/// `[[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]`, and d/dw Σ(w·x)² at w = 1, x = 3 is 18.
pub async fn self_test(device: &Device) -> Result<(), String> {
    use qtlab_core::burn::tensor::Tensor;
    let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], device);
    let b = Tensor::<2>::from_floats([[5.0, 6.0], [7.0, 8.0]], device);
    let got: Vec<f32> = a
        .matmul(b)
        .into_data_async()
        .await
        .map_err(|e| format!("{e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    if got != [19.0, 22.0, 43.0, 50.0] {
        return Err(format!("matmul gave {got:?}, expected [19, 22, 43, 50]"));
    }
    let ad = device.clone().autodiff();
    let w = Tensor::<1>::from_floats([1.0], &ad).require_grad();
    let x = Tensor::<1>::from_floats([3.0], &ad);
    let loss = (w.clone() * x).powf_scalar(2.0).sum();
    let grads = loss.backward();
    let g = w
        .grad(&grads)
        .ok_or("no gradient")?
        .into_data_async()
        .await
        .map_err(|e| format!("{e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    if (g[0] - 18.0).abs() > 1e-4 {
        return Err(format!("gradient gave {}, expected 18", g[0]));
    }
    Ok(())
}

/// The uploaded text file, kept for the session (never in the URL: links carry its name only).
#[derive(Clone)]
pub struct Upload {
    pub name: String,
    pub text: String,
}

#[derive(Default)]
pub struct Engine {
    pub gpu: Option<Device>,
    pub gpu_name: String,
    pub gpu_problem: Option<GpuProblem>,
    pub generation: u64,
    pub lanes: Vec<Option<Run>>,
    /// Whether the current lanes train on the GPU.
    pub on_gpu: bool,
    pub upload: Option<Upload>,
    /// The built-in tinyshakespeare text once downloaded (see [`fetch_builtin`]).
    pub shakespeare: Option<String>,
    /// A download of it is under way: no run may start meanwhile.
    pub downloading: bool,
}

thread_local! {
    pub static ENGINE: RefCell<Engine> = RefCell::new(Engine::default());
}

pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|e| f(&mut e.borrow_mut()))
}

/// The device new runs use: the probed GPU unless there was a problem.
pub fn current_device() -> (Device, bool) {
    with_engine(|e| match (&e.gpu, &e.gpu_problem) {
        (Some(d), None) => (d.clone(), true),
        _ => (Device::flex(), false),
    })
}

/// Loads the data for `spec` (the upload, when it names one) or explains why it cannot.
pub fn load_data(spec: &RunSpec) -> Result<RunData, String> {
    use qtlab_core::spec::DataSource;
    // Under Bigram-Backcopy the source text is read the same way; the task is built from it.
    let text = match spec.data.text_source() {
        DataSource::File(name) if spec.model != qtlab_core::spec::ModelKind::Vit => {
            let up = with_engine(|e| e.upload.clone());
            match up {
                Some(u) if &u.name == name => Some(u.text),
                Some(u) => {
                    return Err(format!(
                        "this run uses the file `{name}`, but `{}` is loaded; upload `{name}` to reproduce it",
                        u.name
                    ));
                }
                None => {
                    return Err(format!(
                        "this run trains on the file `{name}`; upload it (Data → Upload) to reproduce the run"
                    ));
                }
            }
        }
        DataSource::Shakespeare if spec.model != qtlab_core::spec::ModelKind::Vit => {
            with_engine(|e| e.shakespeare.clone())
        }
        _ => None,
    };
    RunData::load(spec, text).map_err(|e| e.to_string())
}

/// Where the app serves the built-in tinyshakespeare text (copied from `public/data/`). It is
/// fetched on first use rather than compiled in: 1.1 MB the other corpora do not need.
pub const SHAKESPEARE_URL: &str = "data/tinyshakespeare.txt";

/// Whether `spec` trains on the built-in tinyshakespeare text and this session has not
/// downloaded it yet.
pub fn needs_download(spec: &RunSpec) -> bool {
    *spec.data.text_source() == qtlab_core::spec::DataSource::Shakespeare
        && spec.model != qtlab_core::spec::ModelKind::Vit
        && with_engine(|e| e.shakespeare.is_none())
}

/// Downloads the built-in tinyshakespeare text (see [`needs_download`]).
pub async fn fetch_builtin() -> Result<(), String> {
    let fail = |why: &str| format!("could not download the built-in tinyshakespeare text ({why})");
    let window = web_sys::window().ok_or_else(|| fail("no window"))?;
    let resp = JsFuture::from(window.fetch_with_str(SHAKESPEARE_URL))
        .await
        .map_err(|_| fail("network error"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| fail("not a response"))?;
    if !resp.ok() {
        return Err(fail(&format!("HTTP {}", resp.status())));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|_| fail("no body"))?)
        .await
        .map_err(|_| fail("the body could not be read"))?;
    let bytes = js_sys::Uint8Array::new(&buf).to_vec();
    // A server's HTML fallback page or a rewritten copy must not become training text.
    if bytes.len() != qtlab_core::data::SHAKESPEARE_BYTES {
        return Err(fail(&format!(
            "got {} bytes, expected {}",
            bytes.len(),
            qtlab_core::data::SHAKESPEARE_BYTES
        )));
    }
    let text = qtlab_core::data::text_file::text_from_bytes("tinyshakespeare", &bytes)
        .map_err(|e| e.to_string())?;
    with_engine(|e| e.shakespeare = Some(text));
    Ok(())
}

/// A promise that resolves after `ms` milliseconds: lets the browser paint and handle input
/// between CPU steps, whose readbacks complete without ever yielding.
pub async fn sleep_ms(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(p).await;
}

pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// Test hook: the browser tests set `window.__qtlabPoisonAt = <step>` to inject NaN weights at
/// that step, since the tiny models here rarely diverge on their own.
pub fn poison_requested(step: usize) -> bool {
    web_sys::window()
        .and_then(|w| Reflect::get(&w, &"__qtlabPoisonAt".into()).ok())
        .and_then(|v| v.as_f64())
        .is_some_and(|s| s as usize == step)
}

static GPU_LOST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn mark_lost(msg: String) {
    if let Ok(mut g) = GPU_LOST.lock()
        && g.is_none()
    {
        *g = Some(msg);
    }
}

/// Why the GPU device went away, once it has.
pub fn gpu_lost() -> Option<String> {
    GPU_LOST.lock().ok().and_then(|g| g.clone())
}
