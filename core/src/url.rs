//! The app's URL state: the run's canonical [`RunSpec`] string plus a few app-only keys that
//! choose what to compare and how to quantize (none of them changes a training result).
//!
//! Parsing is lenient on purpose: a hand-edited link keeps every key that is valid, drops the
//! ones that are not, and says which and why, so a typo never leaves the user with a blank page.

use crate::ptq::calibrate::QuantSettings;
use crate::ptq::weights::WeightRange;
use crate::spec::{AttnKind, KEYS, RunSpec, SpecError};

/// App-only keys, after the spec's keys in the URL.
pub const APP_KEYS: &[&str] = &["cmp", "q", "wr", "wg", "ar", "calib", "backend"];

/// Which backend the app should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU when the probe passes, else the CPU fallback.
    Auto,
    /// Always the CPU (WASM) backend.
    Cpu,
}

/// Everything a shared link carries.
#[derive(Clone, Debug, PartialEq)]
pub struct AppState {
    /// The run. Default: [`RunSpec::default`] with gated attention.
    pub spec: RunSpec,
    /// Attention variants trained beside `spec.attn` on the same data and seed. Default: vanilla.
    pub compare: Vec<AttnKind>,
    /// Bit-width points of the quantization sweep, `(weight bits, activation bits)`.
    /// Default: w8a8, w8a6, w8a4.
    pub quant_points: Vec<(u32, u32)>,
    /// Weight range estimator. Default: min-max (the paper's BERT setting).
    /// `None` (`wr=auto`) uses the paper's choice for the model
    /// ([`WeightRange::default_for`]: MSE for OPT, min-max otherwise).
    pub weight_range: Option<WeightRange>,
    /// One weight grid per output channel (`wg=channel`) instead of per tensor. Default: per
    /// tensor (the paper's).
    pub per_channel: bool,
    /// Activation range estimator (`running_minmax`, `current_minmax`, `percentile:P`).
    /// Default: running min-max (the paper's).
    pub act_range: String,
    /// Calibration batches. Default: 16 (the paper's).
    pub calib_batches: usize,
    pub backend: BackendChoice,
}

impl Default for AppState {
    /// The first preset ([`crate::presets::PRESETS`]): the run a new visitor sees.
    fn default() -> Self {
        let first = &crate::presets::PRESETS[0];
        let (state, errors) = AppState::over(AppState::base(), first.fragment);
        debug_assert!(errors.is_empty(), "preset 0 does not parse: {errors:?}");
        state
    }
}

impl AppState {
    /// What a link's keys apply over: the spec defaults with gated attention beside vanilla.
    /// Links the app writes carry every spec key, so this matters only for hand-written or
    /// preset fragments.
    pub fn base() -> Self {
        AppState {
            // The app opens on the paper's main contrast: gated attention beside vanilla.
            spec: RunSpec {
                attn: AttnKind::Gated,
                ..RunSpec::default()
            },
            compare: vec![AttnKind::Vanilla],
            quant_points: vec![(8, 8), (8, 6), (8, 4)],
            weight_range: None,
            per_channel: false,
            act_range: "running_minmax".to_string(),
            calib_batches: 16,
            backend: BackendChoice::Auto,
        }
    }
}

/// The longest URL fragment read; anything longer is refused before parsing.
pub const MAX_URL_CHARS: usize = 8192;

/// Most bit-width points in one sweep.
pub const MAX_QUANT_POINTS: usize = 8;

fn parse_points(value: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for p in value.split(',').filter(|p| !p.is_empty()) {
        let bits = QuantSettings::parse_bits(p)?;
        if !out.contains(&bits) {
            out.push(bits);
        }
    }
    if out.is_empty() {
        return Err("expected bit-width points like w8a8,w8a4".into());
    }
    if out.len() > MAX_QUANT_POINTS {
        return Err(format!("at most {MAX_QUANT_POINTS} bit-width points"));
    }
    Ok(out)
}

fn parse_compare(value: &str) -> Result<Vec<AttnKind>, String> {
    let mut out = Vec::new();
    for a in value.split(',').filter(|a| !a.is_empty()) {
        let kind: AttnKind = a.parse()?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

impl AppState {
    /// Reads a URL fragment (with or without the leading `#`). Never fails: invalid keys are
    /// dropped and reported; if the surviving spec is inconsistent as a whole, the spec falls
    /// back to its defaults (the app keys that parsed are kept) and that is reported too.
    ///
    /// An empty fragment is the default run (the first preset); any other fragment applies over
    /// [`AppState::base`].
    pub fn from_url(text: &str) -> (AppState, Vec<SpecError>) {
        let text = text.strip_prefix(['#', '?']).unwrap_or(text);
        if text.split('&').all(str::is_empty) {
            return (AppState::default(), Vec::new());
        }
        AppState::over(AppState::base(), text)
    }

    /// Applies a fragment's keys over `state`.
    fn over(mut state: AppState, text: &str) -> (AppState, Vec<SpecError>) {
        let mut errors = Vec::new();
        if text.chars().count() > MAX_URL_CHARS {
            errors.push(SpecError {
                field: "url".into(),
                message: format!("longer than {MAX_URL_CHARS} characters; using the defaults"),
            });
            return (AppState::default(), errors);
        }
        let mut spec = state.spec.clone();
        let mut seen: Vec<String> = Vec::new();
        for segment in text.split('&').filter(|s| !s.is_empty()) {
            let Some((key, raw)) = segment.split_once('=') else {
                errors.push(SpecError {
                    field: short(segment),
                    message: "expected key=value; ignored".into(),
                });
                continue;
            };
            if seen.iter().any(|k| k == key) {
                errors.push(SpecError {
                    field: short(key),
                    message: "given more than once; the first value is kept".into(),
                });
                continue;
            }
            seen.push(key.to_string());
            let value = match crate::spec::percent_decode(raw) {
                Ok(v) => v,
                Err(message) => {
                    errors.push(SpecError {
                        field: short(key),
                        message,
                    });
                    continue;
                }
            };
            let result = match key {
                "cmp" => parse_compare(&value).map(|c| state.compare = c),
                "q" => parse_points(&value).map(|p| state.quant_points = p),
                "wr" => match value.as_str() {
                    "auto" => Ok(state.weight_range = None),
                    other => other
                        .parse()
                        .map(|range| state.weight_range = Some(range))
                        .map_err(|_| format!("expected auto, {}", WeightRange::NAMES.join(" or "))),
                },
                "wg" => match value.as_str() {
                    "tensor" => Ok(state.per_channel = false),
                    "channel" => Ok(state.per_channel = true),
                    _ => Err("expected tensor or channel".to_string()),
                },
                "ar" => {
                    let probe = QuantSettings {
                        w_bits: 8,
                        a_bits: 8,
                        weight_range: WeightRange::MinMax,
                        per_channel: false,
                        act_range: value.clone(),
                        calib_batches: 1,
                    };
                    probe.estimator().map(|_| state.act_range = value.clone())
                }
                "calib" => match value.parse::<usize>() {
                    Ok(n) if (1..=256).contains(&n) => Ok(state.calib_batches = n),
                    _ => Err("expected a whole number from 1 to 256".to_string()),
                },
                "backend" => match value.as_str() {
                    "auto" => Ok(state.backend = BackendChoice::Auto),
                    "cpu" => Ok(state.backend = BackendChoice::Cpu),
                    _ => Err("expected auto or cpu".to_string()),
                },
                k if KEYS.contains(&k) => spec.set(k, &value).map_err(|e| e.message),
                _ => Err("unknown key; ignored".to_string()),
            };
            if let Err(message) = result {
                errors.push(SpecError {
                    field: short(key),
                    message,
                });
            }
        }
        match spec.validate_for_browser() {
            Ok(()) => state.spec = spec,
            Err(e) => errors.push(SpecError {
                field: e.field,
                message: format!("{}; the run settings were reset to the defaults", e.message),
            }),
        }
        (state, errors)
    }

    /// The canonical fragment (without `#`): the spec's canonical string, then the app keys
    /// that differ from their defaults.
    pub fn to_url(&self) -> String {
        let d = AppState::base();
        let mut out = self.spec.to_canonical();
        if self.compare != d.compare {
            let list: Vec<String> = self.compare.iter().map(|a| a.to_string()).collect();
            out.push_str(&format!("&cmp={}", list.join(",")));
        }
        if self.quant_points != d.quant_points {
            let list: Vec<String> = self
                .quant_points
                .iter()
                .map(|(w, a)| format!("w{w}a{a}"))
                .collect();
            out.push_str(&format!("&q={}", list.join(",")));
        }
        if let Some(range) = self.weight_range {
            out.push_str(&format!("&wr={range}"));
        }
        if self.per_channel {
            out.push_str("&wg=channel");
        }
        if self.act_range != d.act_range {
            out.push_str(&format!("&ar={}", self.act_range));
        }
        if self.calib_batches != d.calib_batches {
            out.push_str(&format!("&calib={}", self.calib_batches));
        }
        if self.backend == BackendChoice::Cpu {
            out.push_str("&backend=cpu");
        }
        out
    }

    /// The runs to train side by side: the spec itself, then each compared variant that differs
    /// from it. A variant the spec cannot take (e.g. OPT with conditional gates) is skipped and
    /// reported.
    pub fn lanes(&self) -> (Vec<RunSpec>, Vec<String>) {
        let mut lanes = vec![self.spec.clone()];
        let mut notes = Vec::new();
        for &attn in &self.compare {
            if lanes.iter().any(|l| l.attn == attn) {
                continue;
            }
            let mut s = self.spec.clone();
            s.attn = attn;
            match s.validate_for_browser() {
                Ok(()) => lanes.push(s),
                Err(e) => notes.push(format!("{attn} not compared: {e}")),
            }
        }
        (lanes, notes)
    }

    /// One [`QuantSettings`] per sweep point.
    pub fn quant_settings(&self) -> Vec<QuantSettings> {
        self.quant_points
            .iter()
            .map(|&(w, a)| QuantSettings {
                w_bits: w,
                a_bits: a,
                weight_range: self
                    .weight_range
                    .unwrap_or(WeightRange::default_for(self.spec.model)),
                per_channel: self.per_channel,
                act_range: self.act_range.clone(),
                calib_batches: self.calib_batches,
            })
            .collect()
    }
}

fn short(s: &str) -> String {
    if s.is_empty() {
        return "(empty key)".into();
    }
    let mut out: String = s.chars().take(32).collect();
    if s.chars().count() > 32 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips() {
        let s = AppState::default();
        let (back, errors) = AppState::from_url(&s.to_url());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, s);
    }

    #[test]
    fn every_key_round_trips() {
        let url = "#v=1&model=opt&layers=3&heads=8&d=64&attn=clipped&alpha=2&seed=42&steps=77\
                   &cmp=vanilla,gated&q=w8a8,w4a8&wr=mse&wg=channel&ar=percentile:99.99&calib=4&backend=cpu";
        let (s, errors) = AppState::from_url(url);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.spec.layers, 3);
        assert_eq!(s.spec.heads, 8);
        assert_eq!(s.spec.seed, 42);
        assert_eq!(s.compare, vec![AttnKind::Vanilla, AttnKind::Gated]);
        assert_eq!(s.quant_points, vec![(8, 8), (4, 8)]);
        assert_eq!(s.weight_range, Some(WeightRange::Mse));
        assert!(s.per_channel);
        assert_eq!(s.act_range, "percentile:99.99");
        assert_eq!(s.calib_batches, 4);
        assert_eq!(s.backend, BackendChoice::Cpu);
        let (again, errors) = AppState::from_url(&s.to_url());
        assert!(errors.is_empty());
        assert_eq!(again, s);
    }

    #[test]
    fn bad_keys_are_dropped_and_named_the_rest_kept() {
        let (s, errors) =
            AppState::from_url("#heads=banana&layers=3&zzz=1&q=w99a8&noequals&wg=row");
        assert_eq!(s.spec.layers, 3);
        assert_eq!(s.spec.heads, RunSpec::default().heads);
        assert_eq!(s.quant_points, AppState::base().quant_points);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["heads", "zzz", "q", "noequals", "wg"]);
        assert!(!s.per_channel);
    }

    #[test]
    fn inconsistent_spec_falls_back_to_defaults_with_a_message() {
        // d=64 is not divisible by 5 heads: each key is fine alone, the pair is not.
        let (s, errors) = AppState::from_url("#heads=5&d=64&cmp=gated");
        assert_eq!(s.spec, AppState::base().spec);
        assert_eq!(s.compare, vec![AttnKind::Gated]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("reset to the defaults"),
            "{errors:?}"
        );
    }

    #[test]
    fn an_empty_link_opens_the_first_preset_and_fragments_apply_over_the_base() {
        let first = crate::presets::PRESETS[0];
        for empty in ["", "#", "?", "#&&"] {
            let (s, errors) = AppState::from_url(empty);
            assert!(errors.is_empty());
            assert_eq!(s, AppState::default());
        }
        let d = AppState::default();
        assert_eq!(d.spec, first.spec().unwrap());
        assert_eq!(d.compare.len() + 1, first.variants().len());
        // A partial link starts from the base, not from the first preset.
        let (s, _) = AppState::from_url("#steps=5");
        assert_eq!(s.spec.model, AppState::base().spec.model);
        assert_eq!(s.spec.data, RunSpec::default().data);
        assert_eq!(s.spec.steps, 5);
    }

    #[test]
    fn huge_or_binary_urls_do_not_panic() {
        let long = "a".repeat(MAX_URL_CHARS + 1);
        let (s, errors) = AppState::from_url(&long);
        assert_eq!(s, AppState::default());
        assert_eq!(errors[0].field, "url");
        for junk in [
            "%",
            "%ff%fe",
            "=&=&=",
            "cmp=",
            "q=,,,",
            "\u{0}\u{1}=\u{2}",
            "seed=-1",
        ] {
            let _ = AppState::from_url(junk);
        }
    }

    #[test]
    fn lanes_put_the_spec_first_and_skip_duplicates() {
        let (mut s, _) = AppState::from_url("#attn=gated&cmp=vanilla,gated,clipped");
        let (lanes, notes) = s.lanes();
        let kinds: Vec<AttnKind> = lanes.iter().map(|l| l.attn).collect();
        assert_eq!(
            kinds,
            vec![AttnKind::Gated, AttnKind::Vanilla, AttnKind::Clipped]
        );
        assert!(notes.is_empty());
        assert!(lanes.iter().all(|l| l.seed == s.spec.seed));
        s.compare.clear();
        assert_eq!(s.lanes().0.len(), 1);
    }
}
