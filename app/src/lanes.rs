//! What each compared run has measured so far, kept outside the reactive graph (it grows every
//! step) and published to the charts through a throttled version counter.

use std::cell::RefCell;

use qtlab_core::inspect::Inspection;
use qtlab_core::ptq::calibrate::QuantReport;
use qtlab_core::spec::{AttnKind, GateKind, ModelKind, RunSpec};
use qtlab_core::train::EvalReport;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LaneView {
    /// Canonical spec string of this lane.
    pub spec: String,
    pub attn: String,
    pub label: String,
    pub fingerprint: String,
    pub step: usize,
    pub steps: usize,
    /// (step, training loss)
    pub losses: Vec<(f64, f64)>,
    /// (step, per-layer inf-norm of the headline tap on the training batch)
    pub inf: Vec<(f64, Vec<f64>)>,
    pub evals: Vec<EvalReport>,
    #[serde(default)]
    pub inspection: Option<Inspection>,
    #[serde(default)]
    pub quant: Vec<QuantReport>,
    pub error: Option<String>,
    /// Mean wall milliseconds per step (step + readback) in this browser, after the first.
    pub ms_per_step: f64,
    /// The first step alone: model upload, shader compilation and warm-up.
    #[serde(default)]
    pub first_step_ms: f64,
}

/// A record as exported: the link that made it, and every lane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppRecord {
    pub qtlab: u32,
    pub url: String,
    pub backend: String,
    pub lanes: Vec<LaneView>,
}

pub fn color(attn: &str) -> &'static str {
    match attn {
        "vanilla" => "#d62728",
        "clipped" => "#1f77b4",
        "gated" => "#2ca02c",
        "softmax1" => "#9467bd",
        "sink" => "#ff7f0e",
        _ => "#7f7f7f",
    }
}

pub fn label(spec: &RunSpec) -> String {
    match spec.attn {
        AttnKind::Vanilla => "vanilla".into(),
        AttnKind::Clipped => match spec.alpha {
            Some(a) => format!("clipped (α={a})"),
            None => format!("clipped (γ={}, ζ={})", spec.gamma, spec.zeta),
        },
        AttnKind::Gated => {
            let g = match spec.gate {
                GateKind::UnconditionalPerHead => "uph",
                GateKind::ConditionalPerHead => "cph",
                GateKind::Linear => "linear",
                GateKind::Mlp => "mlp",
                GateKind::AllHeads => "allheads",
            };
            format!("gated ({g}, π={})", spec.pi_init)
        }
        AttnKind::Softmax1 => "softmax+1".into(),
        AttnKind::Sink => "sink token".into(),
    }
}

/// The tracked tap the paper reports for this model (BERT: FFN output; OPT/ViT: block output).
pub fn headline(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Bert => "ffn_out",
        _ => "block_out",
    }
}

impl LaneView {
    pub fn new(spec: &RunSpec) -> LaneView {
        LaneView {
            spec: spec.to_canonical(),
            attn: spec.attn.to_string(),
            label: label(spec),
            fingerprint: spec.fingerprint(),
            steps: spec.steps,
            ..Default::default()
        }
    }

    pub fn model(&self) -> ModelKind {
        RunSpec::parse(&self.spec)
            .map(|s| s.model)
            .unwrap_or(ModelKind::Bert)
    }

    /// (step, value) of layer `l`'s inf-norm on training batches.
    pub fn inf_curve(&self, l: usize) -> Vec<(f64, f64)> {
        self.inf
            .iter()
            .filter_map(|(s, v)| v.get(l).map(|&x| (*s, x)))
            .collect()
    }

    /// (step, value) of layer `l`'s headline kurtosis on the held-out batches.
    pub fn kurt_curve(&self, l: usize) -> Vec<(f64, f64)> {
        let kind = headline(self.model());
        self.evals
            .iter()
            .filter_map(|e| {
                e.outliers
                    .taps
                    .iter()
                    .find(|t| t.kind == kind && t.layer == Some(l))
                    .map(|t| (e.step as f64, t.kurtosis))
            })
            .collect()
    }

    pub fn val_curve(&self) -> Vec<(f64, f64)> {
        self.evals.iter().map(|e| (e.step as f64, e.loss)).collect()
    }

    pub fn layers(&self) -> usize {
        self.inf.last().map(|(_, v)| v.len()).unwrap_or(0).max(
            self.evals
                .last()
                .map(|e| e.outliers.heads.len())
                .unwrap_or(0),
        )
    }

    /// The quality metric the paper reports: perplexity for the language models, accuracy for ViT.
    pub fn metric_name(&self) -> &'static str {
        if self.model() == ModelKind::Vit {
            "accuracy"
        } else {
            "perplexity"
        }
    }
}

thread_local! {
    pub static LANES: RefCell<Vec<LaneView>> = const { RefCell::new(Vec::new()) };
}

pub fn with_lanes<R>(f: impl FnOnce(&mut Vec<LaneView>) -> R) -> R {
    LANES.with(|l| f(&mut l.borrow_mut()))
}

/// Curves as CSV: one row per (lane, step) with the loss and each layer's inf-norm.
pub fn to_csv(lanes: &[LaneView]) -> String {
    let layers = lanes.iter().map(|l| l.layers()).max().unwrap_or(0);
    let mut out = String::from("variant,fingerprint,step,loss");
    for l in 0..layers {
        out.push_str(&format!(",inf_norm_layer{l}"));
    }
    out.push('\n');
    for lane in lanes {
        for &(step, loss) in &lane.losses {
            let inf = lane.inf.iter().find(|(s, _)| *s == step).map(|(_, v)| v);
            out.push_str(&format!(
                "{},{},{},{}",
                csv_field(&lane.label),
                lane.fingerprint,
                step,
                loss
            ));
            for l in 0..layers {
                match inf.and_then(|v| v.get(l)) {
                    Some(x) => out.push_str(&format!(",{x}")),
                    None => out.push(','),
                }
            }
            out.push('\n');
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Reads an exported record back, refusing anything that is not one.
pub fn parse_record(bytes: &[u8]) -> Result<AppRecord, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "the file is not UTF-8 text, so it is not a qtlab record".to_string())?;
    let rec: AppRecord =
        serde_json::from_str(text).map_err(|e| format!("not a qtlab record ({e})"))?;
    if rec.lanes.is_empty() {
        return Err("the record has no runs in it".into());
    }
    for lane in &rec.lanes {
        RunSpec::parse(&lane.spec)
            .map_err(|e| format!("a run in the record has a bad spec: {e}"))?;
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_garbage_is_refused() {
        let spec = RunSpec::default();
        let mut lane = LaneView::new(&spec);
        lane.losses = vec![(0.0, 3.0), (1.0, 2.5)];
        lane.inf = vec![(0.0, vec![1.0, 2.0])];
        let rec = AppRecord {
            qtlab: 1,
            url: spec.to_canonical(),
            backend: "cpu".into(),
            lanes: vec![lane],
        };
        let json = serde_json::to_vec(&rec).unwrap();
        let back = parse_record(&json).unwrap();
        assert_eq!(back.lanes[0].losses, rec.lanes[0].losses);
        let csv = to_csv(&back.lanes);
        assert!(csv.starts_with("variant,fingerprint,step,loss,inf_norm_layer0,inf_norm_layer1\n"));
        assert!(csv.contains("vanilla,"));
        assert!(parse_record(b"").is_err());
        assert!(parse_record(&[0xff, 0xfe, 0x00]).is_err());
        assert!(parse_record(b"{\"qtlab\":1}").is_err());
    }
}
