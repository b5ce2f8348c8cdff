//! What each compared run has measured so far, kept outside the reactive graph (it grows every
//! step) and published to the charts through a throttled version counter.

use std::cell::RefCell;

use qtlab_core::record::RunRecord;
use qtlab_core::spec::{AttnKind, GateKind, ModelKind, RunSpec};
use serde::{Deserialize, Serialize};

/// One lane: its run's record (the same events applied to it as to the run's own copy, see
/// [`RunRecord::apply`]) plus how the page names and colours it. It reads as its record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LaneView {
    pub attn: String,
    pub label: String,
    #[serde(flatten)]
    pub rec: RunRecord,
}

impl std::ops::Deref for LaneView {
    type Target = RunRecord;
    fn deref(&self) -> &RunRecord {
        &self.rec
    }
}

impl std::ops::DerefMut for LaneView {
    fn deref_mut(&mut self) -> &mut RunRecord {
        &mut self.rec
    }
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
    /// The lane of `spec`, starting from its run's record.
    pub fn new(spec: &RunSpec, rec: RunRecord) -> LaneView {
        LaneView {
            attn: spec.attn.to_string(),
            label: label(spec),
            rec,
        }
    }

    pub fn model(&self) -> ModelKind {
        RunSpec::parse(&self.spec)
            .map(|s| s.model)
            .unwrap_or(ModelKind::Bert)
    }

    /// (step, value) of layer `l`'s inf-norm on training batches.
    pub fn inf_curve(&self, l: usize) -> Vec<(f64, f64)> {
        self.inf_norm_curve
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
        self.inf_norm_curve
            .last()
            .map(|(_, v)| v.len())
            .unwrap_or(0)
            .max(
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
            let inf = lane
                .inf_norm_curve
                .iter()
                .find(|(s, _)| *s == step)
                .map(|(_, v)| v);
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
        let mut lane = LaneView::new(&spec, RunRecord::new(&spec, "cpu", 1));
        lane.losses = vec![(0.0, 3.0), (1.0, 2.5)];
        lane.inf_norm_curve = vec![(0.0, vec![1.0, 2.0])];
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

    /// Records exported before lanes held a core `RunRecord` (the curve under `inf`, no
    /// backend, threads or grad norms) still import.
    #[test]
    fn records_from_before_the_driver_still_parse() {
        let spec = RunSpec::default().to_canonical();
        let json = format!(
            r#"{{"qtlab":1,"url":"{spec}","backend":"CPU (WebAssembly)","lanes":[{{"spec":"{spec}","attn":"vanilla","label":"vanilla","fingerprint":"x","step":2,"steps":2,"losses":[[0.0,3.0],[1.0,2.5]],"inf":[[0.0,[1.0,2.0]],[1.0,[1.5,2.5]]],"evals":[],"inspection":null,"quant":[],"error":null,"ms_per_step":4.0,"first_step_ms":90.0}}]}}"#
        );
        let rec = parse_record(json.as_bytes()).unwrap();
        let lane = &rec.lanes[0];
        assert_eq!(lane.inf_norm_curve.len(), 2);
        assert_eq!(lane.inf_curve(1), vec![(0.0, 2.0), (1.0, 2.5)]);
        assert_eq!(
            (lane.step, lane.steps, lane.label.as_str()),
            (2, 2, "vanilla")
        );
        assert!(lane.grad_norms.is_empty());
    }
}
