//! Everything a run trains on, produced on the host as plain vectors.
//!
//! Data is built here without tensors so that it is identical on every backend and platform
//! (native, wasm): all randomness comes from [`crate::rng`], and the few floating-point
//! formulas avoid libm functions whose last bit may differ between platforms. Burn tensors
//! are made from these batches elsewhere.
//!
//! - [`synth_text`]: a built-in English-like corpus, so the app has text without a download.
//! - [`text_file`]: loading a user's text file, with errors that say what is wrong with it.
//! - [`tokenizer`]: a character-level tokenizer with fixed special ids.
//! - [`synth_images`]: a built-in shape-classification set for the ViT.
//! - [`batch`]: train/validation split and the MLM, CLM and image batches.
//! - [`bigram_backcopy`]: the Bigram-Backcopy task built from a text's bigram table.
//! - [`stream`]: a text file of many GB, read a window at a time (native).

use std::fmt;

pub mod batch;
pub mod bigram_backcopy;
#[cfg(not(target_arch = "wasm32"))]
pub mod stream;
pub mod synth_images;
pub mod synth_text;
pub mod text_file;
pub mod tokenizer;

pub use batch::{
    ImageBatch, MIN_SPLIT_TOKENS, TextCorpus, TokenBatch, clm_batch, clm_window, eval_starts,
    image_batch, mlm_batch, mlm_window, window_starts,
};
pub use synth_images::ImageSet;
pub use text_file::{MAX_FILE_BYTES, MIN_CHARS, load_text, text_from_bytes};
pub use tokenizer::{BOS, CLS, CharTokenizer, MASK, NUM_SPECIAL, PAD, SEP, UNK};

/// Why a text could not be used for training. Every variant names its source (a file name,
/// or "the text" when there is none) because these messages are shown to the user as is.
#[derive(Debug)]
pub enum DataError {
    /// The file does not exist or could not be read.
    Io {
        name: String,
        source: std::io::Error,
    },
    /// No bytes at all, or nothing but whitespace.
    Empty { name: String },
    /// Larger than [`MAX_FILE_BYTES`]; refused before reading it whole.
    TooLarge {
        name: String,
        bytes: u64,
        max: usize,
    },
    /// Not valid UTF-8; `offset` is the byte where the first invalid sequence starts.
    NotUtf8 { name: String, offset: usize },
    /// Contains a NUL byte (at `nul_offset`) or too many control characters
    /// (`control_fraction` of all characters): almost certainly not a text file.
    Binary {
        name: String,
        nul_offset: Option<usize>,
        control_fraction: f64,
    },
    /// Valid text, but fewer than `needed` characters.
    TooShort {
        name: String,
        chars: usize,
        needed: usize,
    },
    /// A built-in corpus that this build does not embed and the caller did not supply.
    NotLoaded { name: String },
    /// The source text cannot drive the Bigram-Backcopy task.
    BigramBackcopy(bigram_backcopy::BbError),
    /// The validation fraction is not strictly between 0 and 1.
    BadValFraction { fraction: f64 },
    /// After splitting, the training or validation part holds fewer tokens than one window.
    SplitTooSmall {
        train_tokens: usize,
        val_tokens: usize,
        needed: usize,
    },
}

/// Bytes of the built-in tinyshakespeare text: the app checks its download against this.
pub const SHAKESPEARE_BYTES: usize = 1_115_394;

/// The built-in tinyshakespeare text, embedded in native builds (the CLI, the tests). The
/// browser app does not embed it, to keep the download small; it fetches `data/` instead.
pub fn builtin_shakespeare() -> Option<&'static str> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        Some(include_str!("../../../public/data/tinyshakespeare.txt"))
    }
    #[cfg(target_arch = "wasm32")]
    {
        None
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { name, source } => {
                write!(f, "could not read \"{name}\": {source}")
            }
            DataError::NotLoaded { name } => write!(
                f,
                "the built-in corpus `{name}` is not loaded yet (the app downloads it from data/)"
            ),
            DataError::Empty { name } => {
                write!(
                    f,
                    "\"{name}\" is empty (or contains only whitespace); there is nothing to train on"
                )
            }
            DataError::TooLarge { name, bytes, max } => write!(
                f,
                "\"{name}\" is {:.1} MiB, larger than the {:.0} MiB limit; use a smaller text file",
                *bytes as f64 / (1024.0 * 1024.0),
                *max as f64 / (1024.0 * 1024.0)
            ),
            DataError::NotUtf8 { name, offset } => write!(
                f,
                "\"{name}\" is not valid UTF-8 text (first invalid byte at offset {offset}); \
                 save it as UTF-8 and try again"
            ),
            DataError::Binary {
                name,
                nul_offset: Some(off),
                ..
            } => write!(
                f,
                "\"{name}\" looks like a binary file, not text (it contains a NUL byte at offset {off})"
            ),
            DataError::Binary {
                name,
                nul_offset: None,
                control_fraction,
            } => write!(
                f,
                "\"{name}\" looks like a binary file, not text ({:.0}% of its characters are control characters)",
                control_fraction * 100.0
            ),
            DataError::TooShort {
                name,
                chars,
                needed,
            } => write!(
                f,
                "\"{name}\" is too short to train on: it has {chars} characters, at least {needed} are needed"
            ),
            DataError::BigramBackcopy(e) => write!(f, "{e}"),
            DataError::BadValFraction { fraction } => write!(
                f,
                "the validation fraction must be strictly between 0 and 1, got {fraction}"
            ),
            DataError::SplitTooSmall {
                train_tokens,
                val_tokens,
                needed,
            } => write!(
                f,
                "the text is too short to split: the training part has {train_tokens} tokens and the \
                 validation part {val_tokens}, but each needs at least {needed} (one full sequence)"
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `base^exponent` for `base > 0`, `exponent >= 0`, using only operations that IEEE 754
/// rounds exactly (+, -, *, /, sqrt).
///
/// `f64::powf` goes through the platform's libm, whose last bit may differ between native
/// and wasm; a one-ulp difference in a cumulative table can flip a sampled word and break
/// "same seed, same run" across platforms. The fractional part of the exponent is expanded
/// in binary and each bit multiplies in `base^(2^-k)`, obtained by repeated square roots.
pub(crate) fn det_pow(base: f64, exponent: f64) -> f64 {
    debug_assert!(base > 0.0 && exponent >= 0.0);
    let whole = exponent.floor();
    let mut result = 1.0;
    for _ in 0..whole as u32 {
        result *= base;
    }
    let mut frac = exponent - whole;
    let mut root = base;
    // 40 bits leave a relative error around 1e-12 * ln(base): far below anything we sample.
    for _ in 0..40 {
        root = root.sqrt();
        frac *= 2.0;
        if frac >= 1.0 {
            result *= root;
            frac -= 1.0;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_pow_matches_powf() {
        for &b in &[1.0, 1.5, 2.0, 10.0, 137.0, 4000.0] {
            for &e in &[0.0, 0.5, 1.0, 1.1, 2.25, 3.0] {
                let want = f64::powf(b, e);
                let got = det_pow(b, e);
                assert!(
                    (got - want).abs() <= 1e-10 * want,
                    "{b}^{e}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn errors_name_the_file() {
        let e = DataError::TooShort {
            name: "a.txt".into(),
            chars: 10,
            needed: 1000,
        };
        let s = e.to_string();
        assert!(
            s.contains("a.txt") && s.contains("10") && s.contains("1000"),
            "{s}"
        );
    }
}
