//! The run's data, turned into device batches.
//!
//! Everything random is drawn from the run seed's named streams: the corpus / images from
//! `Data`, which windows or images form a batch from `Order`, BERT's masking from `Mask`.
//! Evaluation batches are fixed (same windows and masks at every evaluation) so curves compare.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::{self, CharTokenizer, DataError, ImageSet, TextCorpus, TokenBatch};
use crate::model::ModelInput;
use crate::rng::{Rng, Stream};
use crate::spec::{DataSource, ModelKind, RunSpec};

/// Characters generated for the built-in corpus: about 30 000 BERT windows of 32 tokens,
/// far more than a demo run reads, and generated in milliseconds.
pub const SYNTH_CHARS: usize = 1_000_000;
/// Synthetic image counts (train / validation).
pub const SYNTH_TRAIN_IMAGES: usize = 4096;
pub const SYNTH_VAL_IMAGES: usize = 1024;

/// Tokens of Bigram-Backcopy data generated per run (train and validation): as many as the
/// synthetic corpus, in whole segments.
pub const BB_TOKENS: usize = 1_000_000;

/// Characters treated as delimiters for the no-op signature (besides [SEP]).
const DELIMITERS: &[char] = &['.', ',', ';', ':', '!', '?', '\n'];

pub enum RunData {
    Text(TextCorpus),
    Images {
        train: ImageSet,
        val: ImageSet,
    },
    /// A `data=file:` text larger than [`data::MAX_FILE_BYTES`]: read by windows, never whole
    /// (native only; the browser refuses such an upload).
    #[cfg(not(target_arch = "wasm32"))]
    Stream(data::stream::StreamCorpus),
}

/// A batch on the host, ready to upload.
pub struct HostBatch {
    pub input: HostInput,
    /// Target class / token per prediction row. `[rows]`
    pub target: Vec<u32>,
    /// 1.0 where the loss counts. `[rows]`
    pub weight: Vec<f32>,
    /// 1.0 on delimiter keys, for the no-op signature. `[batch, seq]`
    pub delim: Vec<f32>,
    /// 1.0 at query positions whose prediction is a Bigram-Backcopy copy (the token before
    /// is a trigger), the only queries that need attention; all 0 for other data.
    /// `[batch, seq]`
    pub copy: Vec<f32>,
    pub batch: usize,
    pub seq: usize,
}

pub enum HostInput {
    Tokens(Vec<u32>),
    /// `[batch, n_patches, patch*patch]`, flattened.
    Patches(Vec<f32>, usize),
}

/// A batch on the device.
pub struct DeviceBatch {
    pub input: ModelInput,
    /// `[rows, 1]`
    pub target: Tensor<2, Int>,
    /// `[rows]`
    pub weight: Tensor<1>,
    /// Σ weight, known on the host so the loss needs no readback.
    pub weight_sum: f32,
    /// `[batch, seq]`
    pub delim: Tensor<2>,
    /// See [`HostBatch::copy`]. `[batch, seq]`
    pub copy: Tensor<2>,
}

impl RunData {
    /// Loads or generates the data a spec asks for. `file_text` supplies the contents of a
    /// `data=file:…` source (the CLI reads the path, the app an upload); `None` means read the
    /// path from disk.
    pub fn load(spec: &RunSpec, file_text: Option<String>) -> Result<RunData, DataError> {
        match (spec.model, &spec.data) {
            (ModelKind::Vit, _) => {
                let mut rng = Rng::stream(spec.seed, Stream::Data);
                let train = data::synth_images::generate(
                    &mut rng,
                    SYNTH_TRAIN_IMAGES,
                    spec.image,
                    spec.classes,
                );
                let val = data::synth_images::generate(
                    &mut rng,
                    SYNTH_VAL_IMAGES,
                    spec.image,
                    spec.classes,
                );
                Ok(RunData::Images { train, val })
            }
            (_, DataSource::Synthetic) => {
                Ok(RunData::Text(TextCorpus::synthetic(spec.seed, SYNTH_CHARS)))
            }
            (_, DataSource::BigramBackcopy(inner)) => {
                let mut rng = Rng::stream(spec.seed, Stream::Data);
                // Its own fork, drawn first, so the task does not depend on the source.
                let mut task = rng.fork(0xBB);
                let text = match (file_text, inner.as_ref()) {
                    (None, DataSource::Synthetic) => {
                        data::synth_text::generate(&mut rng, SYNTH_CHARS)
                    }
                    (file_text, source) => read_text(source, file_text)?,
                };
                let corpus = TextCorpus::bigram_backcopy(
                    &text,
                    spec.bb_k,
                    text_window(spec),
                    BB_TOKENS,
                    &mut task,
                )?;
                Ok(RunData::Text(corpus))
            }
            #[cfg(not(target_arch = "wasm32"))]
            (_, DataSource::File(path))
                if file_text.is_none()
                    && std::fs::metadata(path)
                        .is_ok_and(|m| m.is_file() && m.len() > data::MAX_FILE_BYTES as u64) =>
            {
                let corpus = data::stream::StreamCorpus::open(std::path::Path::new(path), 0.1)?;
                corpus.check_window(text_window(spec))?;
                Ok(RunData::Stream(corpus))
            }
            (_, source) => {
                let text = read_text(source, file_text)?;
                let corpus = TextCorpus::from_text(&text, 0.1)?;
                corpus.check_window(text_window(spec))?;
                Ok(RunData::Text(corpus))
            }
        }
    }

    /// Whether batches flag copy queries (Bigram-Backcopy data).
    pub fn has_copies(&self) -> bool {
        matches!(self, RunData::Text(c) if !c.triggers.is_empty())
    }

    /// Token vocabulary size (0 for images).
    pub fn vocab_size(&self) -> usize {
        match self {
            RunData::Images { .. } => 0,
            _ => self.tokenizer().map_or(0, CharTokenizer::vocab_size),
        }
    }

    /// The text's tokenizer (none for images).
    pub fn tokenizer(&self) -> Option<&CharTokenizer> {
        match self {
            RunData::Text(c) => Some(&c.tokenizer),
            RunData::Images { .. } => None,
            #[cfg(not(target_arch = "wasm32"))]
            RunData::Stream(c) => Some(&c.tokenizer),
        }
    }

    fn delim_ids(&self) -> Vec<u32> {
        match self.tokenizer() {
            Some(t) => {
                let mut ids = vec![data::tokenizer::SEP];
                for ch in DELIMITERS {
                    let id = t.encode(&ch.to_string())[0];
                    if id != data::tokenizer::UNK {
                        ids.push(id);
                    }
                }
                ids
            }
            None => Vec::new(),
        }
    }

    /// The next training batch, drawing window starts from `order` and masks from `mask`.
    pub fn train_batch(&self, spec: &RunSpec, order: &mut Rng, mask: &mut Rng) -> HostBatch {
        match self {
            RunData::Text(c) if c.segment > 0 => {
                let n = c.train.len() / c.segment;
                let starts: Vec<usize> = (0..spec.batch)
                    .map(|_| order.below(n) * c.segment)
                    .collect();
                self.text_batch(spec, &c.train, &starts, mask)
            }
            RunData::Text(c) => {
                let window = text_window(spec);
                let starts = data::window_starts(c.train.len(), window, spec.batch, order);
                self.text_batch(spec, &c.train, &starts, mask)
            }
            RunData::Images { train, .. } => {
                let idx: Vec<usize> = (0..spec.batch)
                    .map(|_| order.below(train.labels.len()))
                    .collect();
                image_host_batch(spec, train, &idx)
            }
            #[cfg(not(target_arch = "wasm32"))]
            RunData::Stream(c) => {
                let (tokens, starts) = c.train_rows(text_window(spec), spec.batch, order);
                self.text_batch(spec, &tokens, &starts, mask)
            }
        }
    }

    /// Evaluation batch `i` of `spec.eval_batches`; identical every time it is asked for.
    pub fn eval_batch(&self, spec: &RunSpec, i: usize) -> HostBatch {
        match self {
            RunData::Text(c) => {
                let window = text_window(spec);
                let all: Vec<usize> = if c.segment > 0 {
                    let n = c.val.len() / c.segment;
                    data::eval_starts(n, 1, spec.batch * spec.eval_batches)
                        .into_iter()
                        .map(|s| s * c.segment)
                        .collect()
                } else {
                    data::eval_starts(c.val.len(), window, spec.batch * spec.eval_batches)
                };
                let starts = &all[i * spec.batch..(i + 1) * spec.batch];
                // A fresh mask stream per evaluation batch keeps evaluation masks fixed.
                let mut mask = Rng::stream(spec.seed, Stream::Mask).fork(0xE7A1_0000 + i as u64);
                self.text_batch(spec, &c.val, starts, &mut mask)
            }
            RunData::Images { val, .. } => {
                let n = val.labels.len();
                let idx: Vec<usize> = (0..spec.batch).map(|j| (i * spec.batch + j) % n).collect();
                image_host_batch(spec, val, &idx)
            }
            #[cfg(not(target_arch = "wasm32"))]
            RunData::Stream(c) => {
                let window = text_window(spec);
                let (tokens, starts) = c.eval_rows(window, spec.batch * spec.eval_batches);
                let rows = &starts[i * spec.batch..(i + 1) * spec.batch];
                let mut mask = Rng::stream(spec.seed, Stream::Mask).fork(0xE7A1_0000 + i as u64);
                self.text_batch(spec, &tokens, rows, &mut mask)
            }
        }
    }

    fn text_batch(
        &self,
        spec: &RunSpec,
        tokens: &[u32],
        starts: &[usize],
        mask: &mut Rng,
    ) -> HostBatch {
        let b: TokenBatch = match spec.model {
            ModelKind::Bert => data::mlm_batch(
                tokens,
                starts,
                spec.seq_len,
                self.vocab_size(),
                spec.mask_prob,
                mask,
            ),
            _ => data::clm_batch(tokens, starts, spec.seq_len, spec.bos),
        };
        let delim_ids = self.delim_ids();
        let delim = b
            .input
            .iter()
            .map(|id| if delim_ids.contains(id) { 1.0 } else { 0.0 })
            .collect();
        let mut copy = vec![0.0; b.batch * b.seq];
        if let RunData::Text(c) = self
            && !c.triggers.is_empty()
        {
            // Text index i sits at row position i (OPT: position i predicts token i) or i + 1
            // (BERT: after [CLS]); token i is a copy when token i − 1 is a trigger, i >= 2.
            let offset = usize::from(spec.model == ModelKind::Bert);
            let window = text_window(spec);
            for (row, &start) in starts.iter().enumerate() {
                let text = &tokens[start..start + window];
                for i in 2..window {
                    if c.triggers.contains(&text[i - 1]) && i + offset < b.seq {
                        copy[row * b.seq + i + offset] = 1.0;
                    }
                }
            }
        }
        HostBatch {
            delim,
            copy,
            target: b.target,
            weight: b.weight,
            batch: b.batch,
            seq: b.seq,
            input: HostInput::Tokens(b.input),
        }
    }
}

/// The text of a file or built-in source: the caller's copy when given (the browser's upload
/// or download), else the file from disk or the embedded tinyshakespeare.
fn read_text(source: &DataSource, given: Option<String>) -> Result<String, DataError> {
    match (given, source) {
        (Some(t), _) => Ok(t),
        (None, DataSource::File(path)) => data::text_file::load_text(std::path::Path::new(path)),
        (None, _) => data::builtin_shakespeare()
            .map(str::to_owned)
            .ok_or(DataError::NotLoaded {
                name: "tinyshakespeare".into(),
            }),
    }
}

/// Tokens of raw text per row: BERT spends two on [CLS]/[SEP]; OPT reads `seq` tokens
/// (BOS + seq−1 inputs, seq targets).
fn text_window(spec: &RunSpec) -> usize {
    match spec.model {
        ModelKind::Bert => spec.seq_len - 2,
        _ => spec.seq_len,
    }
}

fn image_host_batch(spec: &RunSpec, set: &ImageSet, idx: &[usize]) -> HostBatch {
    let ib = data::image_batch(set, idx);
    let (s, p) = (spec.image, spec.patch);
    let g = s / p;
    let n = g * g;
    // Cut patches on the host: [b, s, s] → [b, g·g, p·p], row-major patches.
    let mut patches = vec![0f32; ib.batch * n * p * p];
    for bi in 0..ib.batch {
        for gy in 0..g {
            for gx in 0..g {
                for py in 0..p {
                    for px in 0..p {
                        let src = bi * s * s + (gy * p + py) * s + gx * p + px;
                        let dst = ((bi * n + gy * g + gx) * p + py) * p + px;
                        patches[dst] = ib.pixels[src];
                    }
                }
            }
        }
    }
    HostBatch {
        input: HostInput::Patches(patches, n),
        target: ib.labels,
        weight: vec![1.0; ib.batch],
        delim: vec![0.0; ib.batch * (n + 1)],
        copy: vec![0.0; ib.batch * (n + 1)],
        batch: ib.batch,
        seq: n + 1,
    }
}

impl HostBatch {
    /// Splits the batch into `n` shards of whole sequences (the first shards take the extra
    /// sequences), for data-parallel CPU steps.
    pub fn split(&self, n: usize) -> Vec<HostBatch> {
        let n = n.clamp(1, self.batch.max(1));
        let rows_per_seq = self.target.len() / self.batch.max(1);
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let len = self.batch / n + usize::from(i < self.batch % n);
            let (a, b) = (start, start + len);
            start = b;
            let input = match &self.input {
                HostInput::Tokens(ids) => {
                    HostInput::Tokens(ids[a * self.seq..b * self.seq].to_vec())
                }
                HostInput::Patches(px, np) => {
                    let per = px.len() / self.batch.max(1);
                    HostInput::Patches(px[a * per..b * per].to_vec(), *np)
                }
            };
            out.push(HostBatch {
                input,
                target: self.target[a * rows_per_seq..b * rows_per_seq].to_vec(),
                weight: self.weight[a * rows_per_seq..b * rows_per_seq].to_vec(),
                delim: self.delim[a * self.seq..b * self.seq].to_vec(),
                copy: self.copy[a * self.seq..b * self.seq].to_vec(),
                batch: len,
                seq: self.seq,
            });
        }
        out
    }

    pub fn to_device(&self, spec: &RunSpec, device: &Device) -> DeviceBatch {
        let (b, t) = (self.batch, self.seq);
        let input = match &self.input {
            HostInput::Tokens(ids) => {
                let ids: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
                ModelInput::Tokens(Tensor::from_data(TensorData::new(ids, [b, t]), device))
            }
            HostInput::Patches(px, n) => {
                let p2 = spec.patch * spec.patch;
                ModelInput::Patches(Tensor::from_data(
                    TensorData::new(px.clone(), [b, *n, p2]),
                    device,
                ))
            }
        };
        let rows = self.target.len();
        let target: Vec<i32> = self.target.iter().map(|&i| i as i32).collect();
        DeviceBatch {
            input,
            target: Tensor::from_data(TensorData::new(target, [rows, 1]), device),
            weight: Tensor::from_data(TensorData::new(self.weight.clone(), [rows]), device),
            weight_sum: self.weight.iter().sum(),
            delim: Tensor::from_data(TensorData::new(self.delim.clone(), [b, t]), device),
            copy: Tensor::from_data(TensorData::new(self.copy.clone(), [b, t]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_shakespeare_is_the_same_corpus_as_the_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../public/data/tinyshakespeare.txt"
        );
        let spec = |data: &str| RunSpec::parse(&format!("data={data}")).unwrap();
        let built_in = RunData::load(&spec("tinyshakespeare"), None).unwrap();
        let embedded = data::builtin_shakespeare().unwrap();
        assert_eq!(embedded.len(), data::SHAKESPEARE_BYTES);
        assert_eq!(embedded, std::fs::read_to_string(path).unwrap());
        let file = RunData::load(&spec(&format!("file:{path}")), None).unwrap();
        // tinyshakespeare has 65 distinct characters, plus the special tokens.
        assert!(built_in.vocab_size() > 65, "{}", built_in.vocab_size());
        assert_eq!(built_in.vocab_size(), file.vocab_size());
        let s = spec("tinyshakespeare");
        let batch = |d: &RunData| {
            let mut order = Rng::stream(s.seed, Stream::Order);
            let mut mask = Rng::stream(s.seed, Stream::Mask);
            d.train_batch(&s, &mut order, &mut mask).target
        };
        assert_eq!(batch(&built_in), batch(&file));
        // Text the caller supplies (the browser's download) takes the embedded copy's place.
        let Err(short) = RunData::load(&s, Some("ab".repeat(50))) else {
            panic!("100 characters made a corpus");
        };
        assert!(
            matches!(
                short,
                DataError::TooShort { .. } | DataError::SplitTooSmall { .. }
            ),
            "{short}"
        );
    }

    #[test]
    fn bigram_backcopy_rows_start_on_segments_and_flag_their_copies() {
        for model in ["opt", "bert"] {
            let s = RunSpec::parse(&format!("model={model}&data=bb&seq=24&batch=8")).unwrap();
            let data = RunData::load(&s, None).unwrap();
            let RunData::Text(c) = &data else {
                panic!("bb gave images")
            };
            let window = text_window(&s);
            assert_eq!(c.segment, window);
            assert_eq!(c.triggers.len(), 3);
            // tinyshakespeare's most frequent characters: space, 'e', 't'.
            let trig: String = c.tokenizer.decode(&c.triggers);
            assert_eq!(trig, " et", "{model}");
            let mut order = Rng::stream(s.seed, Stream::Order);
            let mut mask = Rng::stream(s.seed, Stream::Mask);
            let offset = usize::from(model == "bert");
            let mut copies = 0;
            for batch in [
                data.train_batch(&s, &mut order, &mut mask),
                data.eval_batch(&s, 3),
            ] {
                for row in 0..batch.batch {
                    let tgt = &batch.target[row * batch.seq..(row + 1) * batch.seq];
                    let text = &tgt[offset..offset + window];
                    // A row is one whole segment: it never starts on a trigger.
                    assert!(!c.triggers.contains(&text[0]), "{model} row {row}");
                    for i in 0..window {
                        let flag = batch.copy[row * batch.seq + i + offset] == 1.0;
                        let is_copy = i >= 2 && c.triggers.contains(&text[i - 1]);
                        assert_eq!(flag, is_copy, "{model} row {row} pos {i}");
                        if is_copy {
                            assert_eq!(text[i], text[i - 2]);
                            copies += 1;
                        }
                    }
                }
            }
            assert!(copies > 10, "{model}: only {copies} copies");
            // Same spec, same data; the evaluation batch is fixed.
            let again = RunData::load(&s, None).unwrap();
            assert_eq!(
                again.eval_batch(&s, 3).target,
                data.eval_batch(&s, 3).target
            );
        }
        // An uploaded source makes its own task; one with too few characters is refused.
        let s = RunSpec::parse("model=opt&data=bb%3Afile%3Ax.txt&bb_k=3").unwrap();
        let err = RunData::load(&s, Some("ab".repeat(600)))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("bb_k=3"), "{err}");
    }
}
