//! Host-side batches: the train/validation split and the rows each model trains on.
//!
//! Batches are plain vectors so that they are identical on every backend and cheap to test;
//! tensors are made from them elsewhere. Which windows go into a batch comes from the
//! caller (the `Order` stream for training, [`eval_starts`] for evaluation), and BERT's
//! masking draws only from the `mask_rng` it is given, so changing one never shifts the other.

use crate::data::bigram_backcopy::BigramTable;
use crate::data::synth_images::ImageSet;
use crate::data::synth_text;
use crate::data::tokenizer::{BOS, CLS, CharTokenizer, MASK, NUM_SPECIAL, SEP};
use crate::data::{DataError, text_file};
use crate::rng::{Rng, Stream};

/// Fewest tokens each side of the split must hold. A text of [`text_file::MIN_CHARS`]
/// characters with a 10 % validation share must pass, so this is below 100; use
/// [`TextCorpus::check_window`] once the sequence length is known.
pub const MIN_SPLIT_TOKENS: usize = 64;

/// A tokenized text, split contiguously into training and validation streams.
#[derive(Clone, Debug, PartialEq)]
pub struct TextCorpus {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub tokenizer: CharTokenizer,
    /// Tokens per independent segment: rows start only at multiples of it (Bigram-Backcopy,
    /// whose segments are one window each); 0 for running text, where any start is fine.
    pub segment: usize,
    /// Bigram-Backcopy trigger ids (empty for running text): a token right after one is a
    /// copy of the token before it.
    pub triggers: Vec<u32>,
}

impl TextCorpus {
    /// Tokenizes `text` and keeps the last `val_fraction` of the tokens for validation.
    ///
    /// The split is contiguous, not random: with overlapping windows, a random split would
    /// put nearly every validation character into some training window too. The vocabulary
    /// comes from the whole text, so validation has no unknown characters.
    pub fn from_text(text: &str, val_fraction: f64) -> Result<TextCorpus, DataError> {
        if !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(DataError::BadValFraction {
                fraction: val_fraction,
            });
        }
        let tokenizer = CharTokenizer::from_text(text);
        let mut train = tokenizer.encode(text);
        let n_val = (train.len() as f64 * val_fraction).round() as usize;
        let val = train.split_off(train.len() - n_val);
        let corpus = TextCorpus {
            train,
            val,
            tokenizer,
            segment: 0,
            triggers: Vec::new(),
        };
        corpus.check_window(MIN_SPLIT_TOKENS)?;
        Ok(corpus)
    }

    /// The built-in synthetic corpus of about `n_chars` characters (raised to
    /// [`text_file::MIN_CHARS`] if smaller), generated from the seed's `Data` stream, with
    /// 10 % kept for validation.
    pub fn synthetic(seed: u64, n_chars: usize) -> TextCorpus {
        let mut rng = Rng::stream(seed, Stream::Data);
        let text = synth_text::generate(&mut rng, n_chars.max(text_file::MIN_CHARS));
        TextCorpus::from_text(&text, 0.1).expect("synthetic text is long enough to split")
    }

    /// Bigram-Backcopy segments of `window` tokens built from `source`'s bigram table with
    /// the `k` most frequent characters as triggers (see [`bigram_backcopy`](super::bigram_backcopy)): about
    /// `n_tokens` tokens in all, 10 % of the segments kept for validation. The vocabulary is
    /// the source's, so an uploaded text gives its own task.
    pub fn bigram_backcopy(
        source: &str,
        k: usize,
        window: usize,
        n_tokens: usize,
        rng: &mut Rng,
    ) -> Result<TextCorpus, DataError> {
        let tokenizer = CharTokenizer::from_text(source);
        // Unknown characters (beyond the vocabulary cap) are dropped from the statistics, so
        // the task never asks for [UNK].
        let ids: Vec<u32> = tokenizer
            .encode(source)
            .into_iter()
            .filter(|&id| id != crate::data::tokenizer::UNK)
            .collect();
        let table = BigramTable::new(&ids, k).map_err(DataError::BigramBackcopy)?;
        let window = window.max(1);
        let n_val = (n_tokens / window / 10).max(1);
        let n_train = (n_tokens / window).saturating_sub(n_val).max(1);
        let train = table.generate(window, n_train, rng);
        let val = table.generate(window, n_val, rng);
        Ok(TextCorpus {
            train,
            val,
            tokenizer,
            segment: window,
            triggers: table.triggers,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// Checks that both streams hold at least one window of `window` tokens (see
    /// [`mlm_window`] and [`clm_window`]), with an error that says how short they are.
    pub fn check_window(&self, window: usize) -> Result<(), DataError> {
        if self.train.len() < window || self.val.len() < window {
            Err(DataError::SplitTooSmall {
                train_tokens: self.train.len(),
                val_tokens: self.val.len(),
                needed: window,
            })
        } else {
            Ok(())
        }
    }
}

/// Token rows for one step. All vectors are `[batch * seq]`, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub input: Vec<u32>,
    pub target: Vec<u32>,
    /// 1.0 where the loss counts, 0.0 elsewhere.
    pub weight: Vec<f32>,
}

/// Tokens of text an MLM row of `seq` positions holds: [CLS] and [SEP] take two.
pub const fn mlm_window(seq: usize) -> usize {
    seq - 2
}

/// Tokens of text a CLM row of `seq` positions needs: `seq - 1` inputs after [BOS], plus
/// the one token the last position predicts.
pub const fn clm_window(seq: usize) -> usize {
    seq
}

/// BERT's masked-LM rows: `[CLS] tokens[start .. start + seq - 2] [SEP]` per start.
///
/// Each text position is selected with probability `mask_prob`; a row with none selected
/// gets one at random, so every row contributes to the loss. A selected position has weight
/// 1 and its input becomes [MASK] (80 %), a random non-special token (10 %) or stays as is
/// (10 %). Every position's target is the original token (CLS and SEP included), so the
/// weight alone decides what counts; [CLS] and [SEP] are never selected.
///
/// Draws, per row: one number per text position for the selection, then (only if nothing
/// was selected) one position, then one or two numbers per selected position.
pub fn mlm_batch(
    tokens: &[u32],
    starts: &[usize],
    seq: usize,
    vocab_size: usize,
    mask_prob: f64,
    mask_rng: &mut Rng,
) -> TokenBatch {
    assert!(
        seq >= 3,
        "an MLM row needs [CLS], at least one token and [SEP]; seq = {seq}"
    );
    assert!(
        vocab_size > NUM_SPECIAL as usize,
        "vocab_size {vocab_size} has no ordinary tokens"
    );
    assert!(
        (0.0..=1.0).contains(&mask_prob),
        "mask_prob {mask_prob} not in [0, 1]"
    );
    let window = mlm_window(seq);
    let n = starts.len() * seq;
    let (mut input, mut target, mut weight) =
        (Vec::with_capacity(n), Vec::with_capacity(n), vec![0.0; n]);
    let mut selected = Vec::with_capacity(window);
    for (row, &start) in starts.iter().enumerate() {
        assert!(
            start + window <= tokens.len(),
            "window {start}..{} past {} tokens",
            start + window,
            tokens.len()
        );
        let text = &tokens[start..start + window];
        let base = row * seq;
        input.push(CLS);
        input.extend_from_slice(text);
        input.push(SEP);
        target.extend_from_slice(&input[base..base + seq]);

        selected.clear();
        selected.extend((1..=window).filter(|_| mask_rng.next_f64() < mask_prob));
        if selected.is_empty() {
            selected.push(1 + mask_rng.below(window));
        }
        for &p in &selected {
            weight[base + p] = 1.0;
            let r = mask_rng.next_f64();
            if r < 0.8 {
                input[base + p] = MASK;
            } else if r < 0.9 {
                let ordinary = vocab_size - NUM_SPECIAL as usize;
                input[base + p] = NUM_SPECIAL + mask_rng.below(ordinary) as u32;
            }
        }
    }
    TokenBatch {
        batch: starts.len(),
        seq,
        input,
        target,
        weight,
    }
}

/// OPT's causal-LM rows: input `[BOS] tokens[start .. start + seq - 1]`, target
/// `tokens[start .. start + seq]`, so the target at position t is the token that follows
/// input position t. Every position counts.
///
/// With `bos` false, position 0 holds the token just before the window instead of [BOS]
/// (wrapping to the text's last token at start 0), so no row starts with a fixed token.
pub fn clm_batch(tokens: &[u32], starts: &[usize], seq: usize, bos: bool) -> TokenBatch {
    assert!(seq >= 1, "seq must be at least 1");
    let window = clm_window(seq);
    let n = starts.len() * seq;
    let (mut input, mut target) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for &start in starts {
        assert!(
            start + window <= tokens.len(),
            "window {start}..{} past {} tokens",
            start + window,
            tokens.len()
        );
        input.push(if bos {
            BOS
        } else {
            tokens[(start + tokens.len() - 1) % tokens.len()]
        });
        input.extend_from_slice(&tokens[start..start + window - 1]);
        target.extend_from_slice(&tokens[start..start + window]);
    }
    TokenBatch {
        batch: starts.len(),
        seq,
        input,
        target,
        weight: vec![1.0; n],
    }
}

/// `count` random window starts, uniform over `0..=n_tokens - window` (every full window
/// equally likely). Pass the run's `Order` stream.
pub fn window_starts(n_tokens: usize, window: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    assert!(
        window <= n_tokens,
        "a window of {window} tokens does not fit in {n_tokens}"
    );
    let positions = n_tokens - window + 1;
    (0..count).map(|_| rng.below(positions)).collect()
}

/// `count` evenly spaced window starts from 0 to the last full window, so evaluation covers
/// the whole stream without randomness and gives the same number every time. When the
/// stream holds fewer than `count` separate windows they overlap (or repeat).
pub fn eval_starts(n_tokens: usize, window: usize, count: usize) -> Vec<usize> {
    assert!(
        window <= n_tokens,
        "a window of {window} tokens does not fit in {n_tokens}"
    );
    let last = (n_tokens - window) as u128;
    match count {
        0 => Vec::new(),
        1 => vec![0],
        _ => (0..count as u128)
            .map(|i| (i * last / (count as u128 - 1)) as usize)
            .collect(),
    }
}

/// Images for one step.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    pub batch: usize,
    pub side: usize,
    /// `[batch * side * side]`, image after image, each row-major.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
}

/// Copies the images at `indices` (in that order) into one batch.
pub fn image_batch(set: &ImageSet, indices: &[usize]) -> ImageBatch {
    let mut pixels = Vec::with_capacity(indices.len() * set.side * set.side);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        assert!(i < set.len(), "image index {i} out of {}", set.len());
        pixels.extend_from_slice(set.image(i));
        labels.push(set.labels[i]);
    }
    ImageBatch {
        batch: indices.len(),
        side: set.side,
        pixels,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth_images;
    use crate::data::tokenizer::is_special;

    fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| NUM_SPECIAL + rng.below(vocab - NUM_SPECIAL as usize) as u32)
            .collect()
    }

    #[test]
    fn mlm_masking_statistics() {
        // A large vocabulary, so that a "random" replacement rarely equals the original.
        let (vocab, seq, rows) = (1000, 128, 256);
        let tokens = random_tokens(50_000, vocab, 1);
        let starts = window_starts(tokens.len(), mlm_window(seq), rows, &mut Rng::new(2));
        let b = mlm_batch(
            &tokens,
            &starts,
            seq,
            vocab,
            0.15,
            &mut Rng::stream(3, Stream::Mask),
        );
        assert_eq!(
            (
                b.batch,
                b.seq,
                b.input.len(),
                b.target.len(),
                b.weight.len()
            ),
            (rows, seq, rows * seq, rows * seq, rows * seq)
        );
        let (mut text_positions, mut masked, mut to_mask, mut random, mut kept) = (0, 0, 0, 0, 0);
        for r in 0..rows {
            let row = r * seq;
            assert_eq!(
                (b.input[row], b.target[row], b.weight[row]),
                (CLS, CLS, 0.0)
            );
            assert_eq!(
                (
                    b.input[row + seq - 1],
                    b.target[row + seq - 1],
                    b.weight[row + seq - 1]
                ),
                (SEP, SEP, 0.0)
            );
            assert_eq!(
                &b.target[row + 1..row + seq - 1],
                &tokens[starts[r]..starts[r] + seq - 2]
            );
            assert!(b.weight[row..row + seq].contains(&1.0));
            for p in row + 1..row + seq - 1 {
                text_positions += 1;
                if b.weight[p] == 0.0 {
                    assert_eq!(
                        b.input[p], b.target[p],
                        "unselected positions are unchanged"
                    );
                    continue;
                }
                masked += 1;
                if b.input[p] == MASK {
                    to_mask += 1;
                } else if b.input[p] != b.target[p] {
                    assert!(!is_special(b.input[p]) && (b.input[p] as usize) < vocab);
                    random += 1;
                } else {
                    kept += 1;
                }
            }
        }
        let frac = |a: usize, b: usize| a as f64 / b as f64;
        assert!(
            (frac(masked, text_positions) - 0.15).abs() < 0.02,
            "masked {}",
            frac(masked, text_positions)
        );
        assert!(
            (frac(to_mask, masked) - 0.8).abs() < 0.03,
            "[MASK] {}",
            frac(to_mask, masked)
        );
        assert!(
            (frac(random, masked) - 0.1).abs() < 0.03,
            "random {}",
            frac(random, masked)
        );
        assert!(
            (frac(kept, masked) - 0.1).abs() < 0.03,
            "kept {}",
            frac(kept, masked)
        );
        // Same mask stream, same batch.
        let again = mlm_batch(
            &tokens,
            &starts,
            seq,
            vocab,
            0.15,
            &mut Rng::stream(3, Stream::Mask),
        );
        assert_eq!(b, again);
    }

    #[test]
    fn mlm_every_row_has_a_target() {
        let tokens = random_tokens(1000, 50, 4);
        let starts: Vec<usize> = (0..200).map(|i| i * 4).collect();
        let b = mlm_batch(&tokens, &starts, 10, 50, 0.0, &mut Rng::new(5));
        for r in 0..starts.len() {
            let w = &b.weight[r * 10..(r + 1) * 10];
            assert_eq!(w.iter().filter(|&&x| x == 1.0).count(), 1, "row {r}");
            assert_eq!((w[0], w[9]), (0.0, 0.0));
        }
    }

    #[test]
    fn clm_targets_are_shifted_inputs() {
        let tokens: Vec<u32> = (0..500).map(|i| NUM_SPECIAL + i % 40).collect();
        let starts = [0, 7, 436];
        let seq = 64;
        let b = clm_batch(&tokens, &starts, seq, true);
        assert_eq!((b.batch, b.seq, b.input.len()), (3, seq, 3 * seq));
        assert!(b.weight.iter().all(|&w| w == 1.0));
        for (r, &s) in starts.iter().enumerate() {
            let (inp, tgt) = (
                &b.input[r * seq..(r + 1) * seq],
                &b.target[r * seq..(r + 1) * seq],
            );
            assert_eq!(inp[0], BOS);
            assert_eq!(&inp[1..], &tgt[..seq - 1]);
            assert_eq!(tgt, &tokens[s..s + seq]);
        }
    }

    #[test]
    fn clm_without_bos_starts_with_the_previous_token() {
        let tokens: Vec<u32> = (0..500).map(|i| NUM_SPECIAL + i % 40).collect();
        let (starts, seq) = ([0, 7, 436], 64);
        let (with, without) = (
            clm_batch(&tokens, &starts, seq, true),
            clm_batch(&tokens, &starts, seq, false),
        );
        assert_eq!(with.target, without.target);
        assert!(!without.input.contains(&BOS));
        for (r, &s) in starts.iter().enumerate() {
            let row = |b: &TokenBatch| b.input[r * seq..(r + 1) * seq].to_vec();
            assert_eq!(row(&without)[1..], row(&with)[1..]);
            // Start 0 wraps to the text's last token.
            assert_eq!(row(&without)[0], tokens[(s + 499) % 500]);
        }
    }

    #[test]
    fn starts_in_range_and_deterministic() {
        let a = window_starts(1000, 100, 5000, &mut Rng::new(9));
        assert_eq!(a, window_starts(1000, 100, 5000, &mut Rng::new(9)));
        assert_ne!(a, window_starts(1000, 100, 5000, &mut Rng::new(10)));
        assert!(a.iter().all(|&s| s <= 900));
        assert!(a.contains(&0) && a.contains(&900), "both ends reachable");
        assert_eq!(window_starts(100, 100, 3, &mut Rng::new(1)), vec![0, 0, 0]);

        assert_eq!(
            eval_starts(1000, 100, 10),
            vec![0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
        );
        assert_eq!(eval_starts(1000, 100, 1), vec![0]);
        assert!(eval_starts(1000, 100, 0).is_empty());
        let dense = eval_starts(150, 100, 8); // fewer than 8 separate windows fit: overlap
        assert_eq!(dense.len(), 8);
        assert_eq!((dense[0], dense[7]), (0, 50));
        assert!(dense.windows(2).all(|w| w[0] <= w[1]) && dense.iter().all(|&s| s + 100 <= 150));
    }

    #[test]
    fn corpus_split() {
        let text = "The cat sat on the mat. A dog ran in the park! ".repeat(40);
        let c = TextCorpus::from_text(&text, 0.25).unwrap();
        let all: Vec<u32> = c.train.iter().chain(&c.val).copied().collect();
        assert_eq!(
            all,
            c.tokenizer.encode(&text),
            "contiguous split, nothing lost"
        );
        assert_eq!(c.val.len(), (text.len() as f64 * 0.25).round() as usize);
        assert!(c.check_window(c.val.len()).is_ok());
        let e = c.check_window(c.val.len() + 1).unwrap_err();
        assert!(
            matches!(e, DataError::SplitTooSmall { .. }) && e.to_string().contains("validation"),
            "{e}"
        );

        for f in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(matches!(
                TextCorpus::from_text(&text, f),
                Err(DataError::BadValFraction { .. })
            ));
        }
        let e = TextCorpus::from_text(&text[..500], 0.1).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::SplitTooSmall {
                    val_tokens: 50,
                    needed: MIN_SPLIT_TOKENS,
                    ..
                }
            ),
            "{e:?}"
        );
        // The smallest accepted file splits with the default fraction.
        assert!(TextCorpus::from_text(&text[..text_file::MIN_CHARS], 0.1).is_ok());
    }

    #[test]
    fn synthetic_corpus() {
        let a = TextCorpus::synthetic(42, 20_000);
        assert_eq!(a, TextCorpus::synthetic(42, 20_000));
        assert_ne!(a.train, TextCorpus::synthetic(43, 20_000).train);
        let n = a.train.len() + a.val.len();
        assert!((18_000..=20_000).contains(&n), "{n}");
        assert!((a.val.len() as f64 / n as f64 - 0.1).abs() < 0.001);
        let period = a.tokenizer.id_of('.').unwrap();
        assert!(a.train.iter().filter(|&&t| t == period).count() > 100);
        let tiny = TextCorpus::synthetic(1, 10);
        assert!(tiny.check_window(MIN_SPLIT_TOKENS).is_ok());
    }

    #[test]
    fn image_batch_copies() {
        let set = synth_images::generate(&mut Rng::new(1), 20, 8, 4);
        let b = image_batch(&set, &[3, 0, 3]);
        assert_eq!((b.batch, b.side, b.pixels.len()), (3, 8, 3 * 64));
        assert_eq!(b.labels, vec![set.labels[3], set.labels[0], set.labels[3]]);
        assert_eq!(&b.pixels[..64], set.image(3));
        assert_eq!(&b.pixels[64..128], set.image(0));
    }
}
