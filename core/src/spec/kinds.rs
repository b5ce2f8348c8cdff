//! The spec's enums and its data source, each with one canonical spelling per value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::text::echo;

/// Longest accepted `data=file:<name>` name, in characters.
const MAX_FILE_NAME_CHARS: usize = 1024;

/// Which family of model to train. Text: `bert|opt|vit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelKind {
    /// Bidirectional encoder trained with masked-language modelling.
    Bert,
    /// Causal decoder trained with next-token prediction.
    Opt,
    /// Vision transformer classifying built-in synthetic images.
    Vit,
}

/// Which attention normalisation to use. Text: `vanilla|clipped|gated|softmax1|sink`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AttnKind {
    /// Plain softmax attention.
    Vanilla,
    /// Clipped softmax, `clip((ζ − γ)·softmax(x) + γ, 0, 1)` (the paper's Eq. 4).
    Clipped,
    /// Gated attention, `sigmoid(G(x)) ⊙ softmax(QKᵀ/√d)V` (the paper's Eq. 5).
    Gated,
    /// "Softmax + 1": an implicit extra zero logit in the denominator, so a head can put
    /// (almost) no weight anywhere.
    Softmax1,
    /// An extra always-present key slot (attention sink) a head can attend to instead of
    /// the real tokens.
    Sink,
}

/// The gating function `G` of gated attention. Text: `uph|cph|linear|mlp|allheads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum GateKind {
    /// One learned scalar per head, independent of the input (`unconditional_per_head` in
    /// the paper's code).
    UnconditionalPerHead,
    /// One gate per head and sequence, computed from the sequence (`conditional_per_head`).
    ConditionalPerHead,
    /// One gate per head and token from a linear map of that head's slice of the input
    /// (`conditional_per_token`, the paper's default "Linear" gate).
    Linear,
    /// Like `Linear` but through a small MLP with `d_head / 4` hidden units.
    Mlp,
    /// One linear map from the whole hidden vector to all `H` gates ("All-heads-linear").
    AllHeads,
}

/// The learning-rate schedule after the linear warm-up. Text: `linear|const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Schedule {
    /// Linear decay to 0 at the last step (HF `get_linear_schedule_with_warmup`, the paper's).
    Linear,
    /// Constant after warm-up, as Gu et al. 2025 and Guo et al. 2024 train: the integrated
    /// learning rate is about twice the linear schedule's, and sinks grow with it.
    Const,
}

/// Where training text comes from. Text: `synthetic`, `tinyshakespeare`, `file:<name>`, or
/// `bb` / `bb:<one of those>` for Bigram-Backcopy sequences built from that text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataSource {
    /// The built-in synthetic generator (the only source `model=vit` accepts).
    Synthetic,
    /// The built-in tinyshakespeare text (Karpathy's char-rnn corpus, 1.1 MB, public domain),
    /// the corpus of docs/results.md: native builds embed it, the browser app fetches it.
    Shakespeare,
    /// A named text file; the name is opaque here and resolved by the caller.
    File(String),
    /// Bigram-Backcopy sequences (Guo et al. 2024, arXiv 2410.13835) generated from the bigram
    /// table of the inner source (never itself `bb`): text `bb` (tinyshakespeare) or
    /// `bb:<source>`. See [`crate::data::bigram_backcopy`].
    BigramBackcopy(Box<DataSource>),
}

/// Implements `ALL`/`NAMES`, `Display`, `FromStr` (with a `String` error) and the `String`
/// conversions that serde uses, from one list of canonical spellings, so the URL, the CLI, the
/// JSON record and every message that lists the choices cannot drift apart. Spellings after a
/// `|` are old ones, still read (so old records load) but never written.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal $(| $old:literal)*),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in canonical order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The canonical spelling of each variant of [`Self::ALL`], in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The canonical text of this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text $(| $old)* => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "expected one of {}, got `{}`",
                        Self::NAMES.join("|"),
                        $crate::spec::echo(s)
                    )),
                }
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.as_str().to_owned()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                value.parse()
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(ModelKind { Bert => "bert", Opt => "opt", Vit => "vit" });
text_enum!(Schedule { Linear => "linear", Const => "const" });
text_enum!(AttnKind {
    Vanilla => "vanilla",
    Clipped => "clipped",
    Gated => "gated",
    Softmax1 => "softmax1",
    Sink => "sink",
});
text_enum!(GateKind {
    UnconditionalPerHead => "uph",
    ConditionalPerHead => "cph",
    Linear => "linear",
    Mlp => "mlp",
    AllHeads => "allheads",
});

impl fmt::Display for DataSource {
    /// The unencoded text (`file:my data.txt`); [`super::RunSpec::to_canonical`] percent-encodes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Synthetic => f.write_str("synthetic"),
            DataSource::Shakespeare => f.write_str("tinyshakespeare"),
            DataSource::File(name) => write!(f, "file:{name}"),
            DataSource::BigramBackcopy(inner) if **inner == DataSource::Shakespeare => {
                f.write_str("bb")
            }
            DataSource::BigramBackcopy(inner) => write!(f, "bb:{inner}"),
        }
    }
}

impl FromStr for DataSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "synthetic" {
            return Ok(DataSource::Synthetic);
        }
        if s == "tinyshakespeare" {
            return Ok(DataSource::Shakespeare);
        }
        if s == "bb" {
            return Ok(DataSource::BigramBackcopy(Box::new(
                DataSource::Shakespeare,
            )));
        }
        if let Some(inner) = s.strip_prefix("bb:") {
            if inner == "bb" || inner.starts_with("bb:") {
                return Err("`bb:` takes a text source (synthetic, tinyshakespeare or \
                            file:<name>), not another `bb`"
                    .to_owned());
            }
            return Ok(DataSource::BigramBackcopy(Box::new(inner.parse()?)));
        }
        let Some(name) = s.strip_prefix("file:") else {
            return Err(format!(
                "expected `synthetic`, `tinyshakespeare`, `file:<name>`, `bb` or `bb:<source>`, \
                 got `{}`",
                echo(s)
            ));
        };
        if name.is_empty() {
            return Err("the file name after `file:` is empty".to_owned());
        }
        let chars = name.chars().count();
        if chars > MAX_FILE_NAME_CHARS {
            return Err(format!(
                "the file name is {chars} characters long, at most {MAX_FILE_NAME_CHARS} allowed"
            ));
        }
        // A control character (NUL above all) cannot be part of a usable path and would make
        // the URL and the log lines misleading.
        if name.chars().any(char::is_control) {
            return Err(format!(
                "the file name `{}` contains a control character",
                echo(name)
            ));
        }
        Ok(DataSource::File(name.to_owned()))
    }
}

impl From<DataSource> for String {
    fn from(value: DataSource) -> String {
        value.to_string()
    }
}

impl TryFrom<String> for DataSource {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl DataSource {
    /// The source text actually read: the inner source of `bb:…`, else itself.
    pub fn text_source(&self) -> &DataSource {
        match self {
            DataSource::BigramBackcopy(inner) => inner,
            other => other,
        }
    }

    /// The file name to read or upload, if the text comes from a file (also under `bb:`).
    pub fn file_name(&self) -> Option<&str> {
        match self.text_source() {
            DataSource::File(name) => Some(name),
            _ => None,
        }
    }

    pub fn is_bigram_backcopy(&self) -> bool {
        matches!(self, DataSource::BigramBackcopy(_))
    }
}
