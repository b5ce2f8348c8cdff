//! Checkpoints: one file holding everything a run needs to go on exactly where it stopped.
//!
//! A checkpoint is the trainer's host state ([`TrainerState`]: parameters, AdamW moments, the
//! order and masking streams, the step), the record so far and the spec it belongs to. On a
//! deterministic backend (the CPU) a resumed run's numbers equal the uninterrupted run's bit
//! for bit; `tests/checkpoint.rs` checks that.
//!
//! The file: `QTLABCKP`, a little-endian u32 format version, a u64 header length, the JSON
//! [`Header`], the arrays as little-endian f32 in header order, and an FNV-1a 64 checksum of
//! everything before it. It is written to `<path>.tmp`, synced and renamed over `<path>`, so
//! a crash mid-write leaves the previous checkpoint intact; a torn or edited file is refused
//! by name, never half-loaded.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::params::HostArray;
use crate::record::RunRecord;
use crate::train::TrainerState;

const MAGIC: &[u8; 8] = b"QTLABCKP";
const FORMAT: u32 = 1;

/// What a checkpoint says about itself, ahead of its arrays.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The canonical spec of the run; a resume must name the same one.
    pub spec: String,
    /// Shards per step (devices × threads) when it was taken: the shard count changes float
    /// rounding, so an exact resume needs the same.
    pub shards: usize,
    pub steps_done: usize,
    pub order: [u64; 4],
    pub mask: [u64; 4],
    pub updates: i32,
    /// The run's record up to this step.
    pub record: RunRecord,
    /// Milliseconds spent advancing the run so far.
    pub active_ms: f64,
    /// The arrays that follow, in order.
    pub arrays: Vec<ArrayEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArrayEntry {
    /// `param:<path>`, `m:<path>` or `v:<path>`.
    pub name: String,
    pub shape: Vec<usize>,
}

/// A checkpoint in memory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub header: Header,
    pub state: TrainerState,
}

/// FNV-1a 64: enough to catch a torn or edited file (not an adversary).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Writes `bytes` to the file and to the checksum.
struct Summed<W: Write> {
    w: W,
    sum: Fnv,
}

impl<W: Write> Summed<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sum.update(bytes);
        self.w.write_all(bytes)
    }
}

impl Checkpoint {
    /// The state's arrays in file order, with their values.
    fn arrays(state: &TrainerState) -> Vec<(ArrayEntry, &[f32])> {
        let mut out = Vec::new();
        for (path, a) in &state.params {
            out.push((
                ArrayEntry {
                    name: format!("param:{path}"),
                    shape: a.shape.clone(),
                },
                a.values.as_slice(),
            ));
        }
        for (path, (m, v)) in &state.moments {
            for (kind, x) in [("m", m), ("v", v)] {
                out.push((
                    ArrayEntry {
                        name: format!("{kind}:{path}"),
                        shape: vec![x.len()],
                    },
                    x.as_slice(),
                ));
            }
        }
        out
    }

    /// Writes atomically: a temporary sibling, synced, then renamed over `path`.
    pub fn save(
        state: &TrainerState,
        spec: &str,
        shards: usize,
        record: &RunRecord,
        active_ms: f64,
        path: &Path,
    ) -> Result<(), String> {
        let arrays = Checkpoint::arrays(state);
        let header = Header {
            spec: spec.to_string(),
            shards,
            steps_done: state.steps_done,
            order: state.order,
            mask: state.mask,
            updates: state.updates,
            record: record.clone(),
            active_ms,
            arrays: arrays.iter().map(|(e, _)| e.clone()).collect(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let fail = |e: std::io::Error| format!("cannot write checkpoint `{}`: {e}", path.display());
        let file = std::fs::File::create(&tmp).map_err(fail)?;
        let mut out = Summed {
            w: BufWriter::new(file),
            sum: Fnv::new(),
        };
        out.put(MAGIC).map_err(fail)?;
        out.put(&FORMAT.to_le_bytes()).map_err(fail)?;
        out.put(&(json.len() as u64).to_le_bytes()).map_err(fail)?;
        out.put(&json).map_err(fail)?;
        for (_, values) in &arrays {
            let mut buf = Vec::with_capacity(values.len() * 4);
            for v in *values {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            out.put(&buf).map_err(fail)?;
        }
        let sum = out.sum.0;
        out.w.write_all(&sum.to_le_bytes()).map_err(fail)?;
        let file = out.w.into_inner().map_err(|e| fail(e.into_error()))?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(fail)?;
        // The rename is durable only once the directory is synced (best effort: not every
        // platform can open a directory).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads and checks a checkpoint; every way a file can be wrong is a named error.
    pub fn load(path: &Path) -> Result<Checkpoint, String> {
        let name = path.display();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read checkpoint `{name}`: {e}"))?;
        let bad = |why: &str| format!("`{name}` is not a usable qtlab checkpoint: {why}");
        if bytes.len() < 28 || &bytes[..8] != MAGIC {
            return Err(bad("it does not start like one"));
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(bad(&format!(
                "format {format}, this qtlab reads format {FORMAT}"
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let mut sum = Fnv::new();
        sum.update(body);
        if sum.0.to_le_bytes() != tail {
            return Err(bad("its checksum does not match (a torn or edited file)"));
        }
        let hlen = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")) as usize;
        let json = body
            .get(20..20usize.saturating_add(hlen))
            .ok_or_else(|| bad("the header is cut short"))?;
        let header: Header =
            serde_json::from_slice(json).map_err(|e| bad(&format!("header: {e}")))?;
        let mut at = 20 + hlen;
        let mut params = BTreeMap::new();
        let mut ms: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut vs: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for e in &header.arrays {
            let n: usize = e.shape.iter().product();
            let raw = body
                .get(at..at + n * 4)
                .ok_or_else(|| bad(&format!("`{}` is cut short", e.name)))?;
            at += n * 4;
            let values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            match e.name.split_once(':') {
                Some(("param", p)) => {
                    params.insert(
                        p.to_string(),
                        HostArray {
                            shape: e.shape.clone(),
                            values,
                        },
                    );
                }
                Some(("m", p)) => {
                    ms.insert(p.to_string(), values);
                }
                Some(("v", p)) => {
                    vs.insert(p.to_string(), values);
                }
                _ => return Err(bad(&format!("unknown array `{}`", e.name))),
            }
        }
        if at != body.len() {
            return Err(bad("bytes left over after the arrays"));
        }
        let mut moments = BTreeMap::new();
        for (p, m) in ms {
            let v = vs
                .remove(&p)
                .ok_or_else(|| bad(&format!("`{p}` has m but no v")))?;
            moments.insert(p, (m, v));
        }
        let state = TrainerState {
            steps_done: header.steps_done,
            order: header.order,
            mask: header.mask,
            updates: header.updates,
            params,
            moments,
        };
        Ok(Checkpoint { header, state })
    }
}
