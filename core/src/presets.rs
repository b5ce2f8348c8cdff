//! The app's presets, shared with the CLI (`qtlab presets`, `qtlab spec --preset`,
//! `qtlab experiment --preset`), so a preset means the same run everywhere.
//!
//! A preset is a link fragment: spec keys plus the app's own keys (`cmp`, the variants trained
//! beside the preset's `attn`; `q`, the quantization points). The first preset is the app's
//! default run.

use crate::spec::{KEYS, RunSpec, SpecError};

/// One preset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    /// Short id for the command line (`qtlab experiment --preset bb-opt`).
    pub id: &'static str,
    /// The name the app's preset menu shows.
    pub name: &'static str,
    /// Link fragment: spec keys over the defaults, plus the app keys `cmp` and `q`.
    pub fragment: &'static str,
    /// One line on what the preset shows, measured (see docs/results.md).
    pub shows: &'static str,
}

/// Every preset; the first is the app's default.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: "bb-opt",
        name: "No-op heads: OPT on Bigram-Backcopy, gated vs vanilla",
        fragment: "model=opt&layers=2&d=64&heads=1&ffn=256&seq=64&batch=16&data=bb&attn=gated\
                   &gate=linear&pi=0.25&alpha=2&gamma_warmup=100&steps=1500&lr=0.001&warmup=50\
                   &sched=const&b2=0.99&wd=0.01&eval_every=250&cmp=vanilla&q=w8a8,w8a6,w8a4",
        shows: "gating lowers max |x| 1.7-1.9x in each of 3 seeds and loses less at W8A4; avg \
                kurtosis is higher with the gate (closed gates make out_proj sparse), and on \
                other text's bigrams (bb:file:) the gate's max |x| is the larger: unlike the \
                paper",
    },
    Preset {
        id: "bb-bert",
        name: "BERT on Bigram-Backcopy: MLP gate and clipped softmax α=2 vs vanilla",
        fragment: "model=bert&layers=2&d=64&heads=1&ffn=256&seq=64&batch=16&data=bb&attn=gated\
                   &gate=mlp&alpha=2&gamma_warmup=100&steps=1500&lr=0.001&warmup=50&sched=const\
                   &b2=0.99&eval_every=250&cmp=vanilla,clipped&q=w8a8,w8a6,w8a4",
        shows: "the paper's BERT fixes on the same task: max |x| 1.0-1.5x lower gated, \
                1.0-2.1x clipped (3 seeds), no sink forms; clipped costs FP perplexity \
                (10.4 vs 6.4)",
    },
    Preset {
        id: "bert-quick",
        name: "BERT on the synthetic corpus (faint: no no-op task)",
        fragment: "attn=gated&gate=mlp&steps=300&cmp=vanilla,clipped",
        shows: "running text at this size gives heads little reason to do nothing; the \
                variants barely differ",
    },
    Preset {
        id: "opt",
        name: "OPT on the synthetic corpus, gated vs vanilla",
        fragment: "model=opt&attn=gated&steps=300&cmp=vanilla",
        shows: "the same on a causal model: a small, seed-dependent gap",
    },
    Preset {
        id: "vit",
        name: "ViT on synthetic shapes",
        fragment: "model=vit&attn=gated&steps=300&cmp=vanilla",
        shows: "both fixes lower max |x| by about a third at this size",
    },
    Preset {
        id: "shakespeare",
        name: "Shakespeare: BERT lr 3e-3, no decay, MLP gate",
        fragment: "data=tinyshakespeare&lr=0.003&wd=0&steps=3000&warmup=100&alpha=2\
                   &gamma_warmup=300&gate=mlp&attn=gated&cmp=vanilla,clipped&eval_every=500\
                   &q=w8a8,w8a6,w8a5,w8a4",
        shows: "the MLP gate halves max |x| in each of 3 seeds (3x on other prose) but costs \
                FP perplexity; clipped softmax at alpha=2, T=32 stalls (dead start), unlike \
                the paper",
    },
    Preset {
        id: "gpu",
        name: "Real GPU: BERT 4 layers, d 128, seq 64",
        fragment: "layers=4&d=128&heads=4&ffn=512&seq=64&batch=32&steps=2500&warmup=100\
                   &attn=gated&gate=mlp&cmp=vanilla,clipped&eval_every=250",
        shows: "a size where outliers grow, for a machine with a GPU",
    },
];

/// The preset with this id or exact name.
pub fn find(id_or_name: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.id == id_or_name || p.name == id_or_name)
}

impl Preset {
    /// The fragment's `key=value` pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        self.fragment
            .split('&')
            .filter_map(|kv| kv.trim().split_once('='))
    }

    /// The fragment's spec keys over the defaults.
    pub fn spec(&self) -> Result<RunSpec, SpecError> {
        let spec_part: Vec<String> = self
            .pairs()
            .filter(|(k, _)| KEYS.contains(k))
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect();
        RunSpec::parse(&spec_part.join("&"))
    }

    /// The variants the app trains: the preset's `attn`, then its `cmp` list.
    pub fn variants(&self) -> Vec<String> {
        let attn = self
            .pairs()
            .find(|(k, _)| *k == "attn")
            .map_or("vanilla", |(_, v)| v);
        let mut out = vec![attn.to_string()];
        if let Some((_, cmp)) = self.pairs().find(|(k, _)| *k == "cmp") {
            for v in cmp.split(',').filter(|v| !v.is_empty()) {
                if !out.iter().any(|o| o == v) {
                    out.push(v.to_string());
                }
            }
        }
        out
    }

    /// The `q` list (quantization points), if the preset names one.
    pub fn quant_points(&self) -> Option<&'static str> {
        self.pairs().find(|(k, _)| *k == "q").map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_spec_with_known_app_keys() {
        let mut ids = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(ids.insert(p.id), "duplicate id {}", p.id);
            let spec = p.spec().unwrap_or_else(|e| panic!("{}: {e}", p.id));
            for (k, _) in p.pairs() {
                assert!(
                    KEYS.contains(&k) || k == "cmp" || k == "q",
                    "{}: unknown key {k}",
                    p.id
                );
            }
            for v in p.variants() {
                let mut s = spec.clone();
                s.set("attn", &v).unwrap();
                s.validate().unwrap_or_else(|e| panic!("{} {v}: {e}", p.id));
            }
            assert!(find(p.id).is_some() && find(p.name).is_some());
        }
        let first = &PRESETS[0];
        assert_eq!(
            first.variants()[1],
            "vanilla",
            "the default compares against vanilla"
        );
        assert!(find("no such preset").is_none());
    }
}
