//! A built-in, English-like synthetic corpus, so the app can train without any download.
//!
//! The text only has to look like language to a tiny model: a Zipf-like word distribution
//! (a few words dominate, a long tail is rare), sentences of varying length with frequent
//! delimiters. The delimiters matter most: in the paper, attention heads that want to "do
//! nothing" park their attention on frequent low-information tokens such as "." and "\[SEP\]",
//! and that is what creates the outliers. Here ". " ends every sentence (a few dozen
//! characters apart), so such tokens are plentiful.

use crate::data::det_pow;
use crate::rng::Rng;

/// Zipf exponent: probability of the word at rank r is proportional to 1 / r^ZIPF_S,
/// close to what is measured on English.
pub const ZIPF_S: f64 = 1.1;

/// Number of generated content ("pseudo") words.
pub const CONTENT_WORDS: usize = 400;

/// Very frequent short words, most frequent first, as in English frequency lists.
pub const FUNCTION_WORDS: [&str; 42] = [
    "the", "of", "and", "a", "to", "in", "is", "it", "that", "was", "for", "on", "as", "with",
    "by", "at", "from", "this", "be", "or", "an", "are", "not", "but", "his", "her", "they", "we",
    "you", "he", "she", "has", "had", "which", "were", "all", "one", "there", "so", "if", "no",
    "my",
];

const ONSETS: [&str; 33] = [
    "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "cr", "dr", "fl", "gr", "pl", "pr", "st", "tr", "sh", "ch", "th", "sl", "sp",
];
const VOWELS: [&str; 10] = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ie", "oo"];
const CODAS: [&str; 14] = [
    "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "rt", "ck", "x",
];

/// Sentence length bounds in words (inclusive).
const MIN_WORDS: usize = 4;
const MAX_WORDS: usize = 18;
/// Chance that a content word is preceded by a function word ("the stoon", "of brai").
const P_FUNCTION: f64 = 0.55;
/// Chance of a comma after a phrase.
const P_COMMA: f64 = 0.1;
/// Chance that a sentence closes its paragraph.
const P_PARAGRAPH: f64 = 0.15;

/// Draws indices 0..n; index i has probability proportional to 1 / (first_rank + i)^ZIPF_S.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(first_rank: usize, n: usize) -> Self {
        let mut acc = 0.0;
        let cdf = (first_rank..first_rank + n)
            .map(|r| {
                acc += 1.0 / det_pow(r as f64, ZIPF_S);
                acc
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64() * self.cdf[self.cdf.len() - 1];
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// `CONTENT_WORDS` distinct pseudo-words from syllables, shortest first so that frequent
/// words are short, as in real languages (Zipf's law of abbreviation).
fn content_vocabulary(rng: &mut Rng) -> Vec<String> {
    let mut words: Vec<String> = Vec::with_capacity(CONTENT_WORDS);
    while words.len() < CONTENT_WORDS {
        let r = rng.next_f64();
        let syllables = if r < 0.3 {
            1
        } else if r < 0.8 {
            2
        } else {
            3
        };
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.below(ONSETS.len())]);
            w.push_str(VOWELS[rng.below(VOWELS.len())]);
            w.push_str(CODAS[rng.below(CODAS.len())]);
        }
        // A 1-letter vowel word would read like "a"; keep content words at 2+ letters.
        if w.len() >= 2 && !FUNCTION_WORDS.contains(&w.as_str()) && !words.contains(&w) {
            words.push(w);
        }
    }
    words.sort_by_key(|w| w.len()); // stable: ties keep generation order
    words
}

/// About `n_chars` characters (never more, at least 90 % for any `n_chars` above a few
/// sentences) of ASCII pseudo-English: sentences of 4–18 words, capitalised, ending in
/// ". ", "? " or "! ", with paragraphs separated by "\n". Same `rng` state, same text; the
/// vocabulary is drawn first, so it does not depend on `n_chars`.
pub fn generate(rng: &mut Rng, n_chars: usize) -> String {
    let content = content_vocabulary(rng);
    // One ranked list: function words take ranks 1..=42, content words the ranks after
    // them, as in English where the top of the list is all "the", "of", "and". The grammar
    // below decides which kind of word a slot gets, the ranks which word of that kind.
    let zipf_function = Zipf::new(1, FUNCTION_WORDS.len());
    let zipf_content = Zipf::new(FUNCTION_WORDS.len() + 1, content.len());

    let mut out = String::with_capacity(n_chars + 256);
    let mut before_last = 0;
    let mut words: Vec<&str> = Vec::with_capacity(MAX_WORDS);
    let mut comma_after: Vec<bool> = Vec::with_capacity(MAX_WORDS);
    while out.len() < n_chars {
        before_last = out.len();
        words.clear();
        comma_after.clear();
        let len = MIN_WORDS + rng.below(MAX_WORDS - MIN_WORDS + 1);
        while words.len() < len {
            if len - words.len() >= 2 && rng.next_f64() < P_FUNCTION {
                words.push(FUNCTION_WORDS[zipf_function.sample(rng)]);
                comma_after.push(false);
            }
            words.push(&content[zipf_content.sample(rng)]);
            let comma = words.len() >= 3 && words.len() < len && rng.next_f64() < P_COMMA;
            comma_after.push(comma);
        }
        for (i, w) in words.iter().enumerate() {
            if i == 0 {
                let mut cs = w.chars();
                let first = cs.next().expect("words are non-empty");
                out.push(first.to_ascii_uppercase());
                out.push_str(cs.as_str());
            } else {
                out.push(' ');
                out.push_str(w);
            }
            if comma_after[i] {
                out.push(',');
            }
        }
        let r = rng.next_f64();
        out.push(if r < 0.8 {
            '.'
        } else if r < 0.92 {
            '?'
        } else {
            '!'
        });
        out.push(if rng.next_f64() < P_PARAGRAPH {
            '\n'
        } else {
            ' '
        });
    }
    // The last sentence overshoots; drop it if the rest is long enough, else cut mid-way,
    // so that callers can rely on n_chars as an upper bound (memory caps, tests).
    if out.len() > n_chars {
        if before_last * 10 >= n_chars * 9 {
            out.truncate(before_last);
        } else {
            out.truncate(n_chars);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use std::collections::HashMap;

    fn text(seed: u64, n: usize) -> String {
        generate(&mut Rng::stream(seed, Stream::Data), n)
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(text(1, 5000), text(1, 5000));
        assert_ne!(text(1, 5000), text(2, 5000));
        // A longer text starts like a shorter one would (vocabulary drawn first).
        assert!(text(1, 50_000).starts_with(&text(1, 5000)[..4000]));
    }

    #[test]
    fn ascii_and_length() {
        for &n in &[0usize, 300, 1000, 20_000, 200_000] {
            let t = text(3, n);
            assert!(t.is_ascii());
            assert!(t.len() <= n, "{} > {n}", t.len());
            assert!(t.len() * 10 >= n * 9, "{} too far below {n}", t.len());
        }
    }

    #[test]
    fn many_sentence_delimiters() {
        let t = text(4, 100_000);
        let delims = t.matches(". ").count();
        // ~60-90 chars per sentence, 80 % end in "." and 85 % of those in ". ".
        assert!(delims > 100_000 / 200, "{delims}");
        assert!(t.matches('\n').count() > 100, "paragraphs");
        assert!(t.matches("? ").count() > 20 && t.matches("! ").count() > 10);
        assert!(t.contains(", "));
        // Sentences start with a capital.
        for s in t.split(". ").skip(1).take(100) {
            assert!(s.chars().next().unwrap().is_ascii_uppercase(), "{s}");
        }
    }

    #[test]
    fn zipf_like_frequencies() {
        let t = text(5, 200_000);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for w in t.split_whitespace() {
            let w = w
                .trim_matches(|c: char| !c.is_ascii_alphabetic())
                .to_ascii_lowercase();
            *counts.entry(w).or_insert(0) += 1;
        }
        let mut c: Vec<usize> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        assert!(c.len() >= 300, "vocabulary of {} words", c.len());
        // Measured: 3030 / 136 / 30 for ranks 1 / 50 / 300. With ZIPF_S = 0 (same grammar,
        // uniform within each word class) it is 248 / 62 / 43, failing both checks.
        assert!(c[0] > 10 * c[49], "top {} vs 50th {}", c[0], c[49]);
        assert!(
            c[49] > 2 * c[299],
            "50th {} vs 300th {}: no long tail",
            c[49],
            c[299]
        );
        // Sentence lengths within 4..=18 words.
        for s in t.split(['.', '?', '!']).skip(1).take(500) {
            let n = s.split_whitespace().count();
            if n > 0 {
                assert!((MIN_WORDS..=MAX_WORDS).contains(&n), "{n}: {s}");
            }
        }
    }
}
