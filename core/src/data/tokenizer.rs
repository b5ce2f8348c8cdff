//! A character-level tokenizer.
//!
//! Characters rather than sub-words because the models are tiny and the app must build the
//! vocabulary instantly from any uploaded text, with nothing to download or train. The
//! paper's effect needs frequent, low-information tokens (delimiters such as ". " and "\n"
//! here) that attention heads can park on, and characters provide those.

use std::collections::HashMap;

/// Padding (never produced by the batchers here, reserved so models can rely on id 0).
pub const PAD: u32 = 0;
/// A character the tokenizer does not know.
pub const UNK: u32 = 1;
/// BERT's first token.
pub const CLS: u32 = 2;
/// BERT's last token.
pub const SEP: u32 = 3;
/// BERT's mask token.
pub const MASK: u32 = 4;
/// OPT's beginning-of-sequence token.
pub const BOS: u32 = 5;
/// Ids below this are special; characters start here.
pub const NUM_SPECIAL: u32 = 6;

/// The most ids a vocabulary may hold; a binary-ish file with thousands of distinct
/// "characters" would otherwise make the embedding and output layers explode.
pub const MAX_VOCAB: usize = 4096;

const SPECIAL_NAMES: [&str; NUM_SPECIAL as usize] =
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]"];

/// Whether `id` is one of the fixed special tokens.
pub const fn is_special(id: u32) -> bool {
    id < NUM_SPECIAL
}

/// Maps characters to ids: the specials first, then the text's characters in sorted order,
/// so the same set of characters always gives the same ids whatever order they appear in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    /// `chars[i]` has id `NUM_SPECIAL + i`; sorted ascending.
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

impl CharTokenizer {
    pub const PAD: u32 = PAD;
    pub const UNK: u32 = UNK;
    pub const CLS: u32 = CLS;
    pub const SEP: u32 = SEP;
    pub const MASK: u32 = MASK;
    pub const BOS: u32 = BOS;
    pub const NUM_SPECIAL: u32 = NUM_SPECIAL;

    /// Builds the vocabulary from every distinct character of `text`. If there are more
    /// than `MAX_VOCAB - NUM_SPECIAL` (4090) of them, only the most frequent are kept (ties
    /// broken by character order) and the rest become [`UNK`].
    pub fn from_text(text: &str) -> Self {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for c in text.chars() {
            *counts.entry(c).or_insert(0) += 1;
        }
        let mut chars: Vec<char> = counts.keys().copied().collect();
        let cap = MAX_VOCAB - NUM_SPECIAL as usize;
        if chars.len() > cap {
            chars.sort_by(|a, b| counts[b].cmp(&counts[a]).then(a.cmp(b)));
            chars.truncate(cap);
        }
        Self::from_chars(chars)
    }

    /// Rebuilds a tokenizer from its character list (e.g. one saved with a checkpoint).
    /// The list is sorted and deduplicated, so ids depend only on the set of characters.
    pub fn from_chars(mut chars: Vec<char>) -> Self {
        chars.sort_unstable();
        chars.dedup();
        assert!(
            chars.len() + NUM_SPECIAL as usize <= MAX_VOCAB,
            "a tokenizer holds at most {} characters, got {}",
            MAX_VOCAB - NUM_SPECIAL as usize,
            chars.len()
        );
        let ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, NUM_SPECIAL + i as u32))
            .collect();
        CharTokenizer { chars, ids }
    }

    /// The known characters, in id order (id = `NUM_SPECIAL` + index).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Specials plus characters: the size the embedding and output layers need.
    pub fn vocab_size(&self) -> usize {
        NUM_SPECIAL as usize + self.chars.len()
    }

    /// The id of one character, if it is in the vocabulary.
    pub fn id_of(&self, c: char) -> Option<u32> {
        self.ids.get(&c).copied()
    }

    /// One id per character; unknown characters become [`UNK`].
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars().map(|c| self.id_of(c).unwrap_or(UNK)).collect()
    }

    /// The inverse of [`encode`](Self::encode) for known characters; specials are written
    /// as "[CLS]", "[MASK]" etc., and ids outside the vocabulary as "[UNK]".
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::with_capacity(ids.len());
        for &id in ids {
            if is_special(id) {
                out.push_str(SPECIAL_NAMES[id as usize]);
            } else {
                match self.chars.get((id - NUM_SPECIAL) as usize) {
                    Some(&c) => out.push(c),
                    None => out.push_str(SPECIAL_NAMES[UNK as usize]),
                }
            }
        }
        out
    }

    /// Whether `id` is one of the fixed special tokens.
    pub const fn is_special(id: u32) -> bool {
        is_special(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_fixed() {
        let t = CharTokenizer::from_text("zyx");
        assert_eq!(
            (PAD, UNK, CLS, SEP, MASK, BOS, NUM_SPECIAL),
            (0, 1, 2, 3, 4, 5, 6)
        );
        assert_eq!(t.vocab_size(), 9);
        assert_eq!(t.encode("xyz"), vec![6, 7, 8]);
        assert_eq!(
            t.decode(&[CLS, 6, MASK, SEP, PAD, BOS, UNK]),
            "[CLS]x[MASK][SEP][PAD][BOS][UNK]"
        );
        assert!(CharTokenizer::is_special(BOS) && !CharTokenizer::is_special(NUM_SPECIAL));
    }

    #[test]
    fn round_trip() {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak. Ünïcödé — ok?";
        let t = CharTokenizer::from_text(text);
        let ids = t.encode(text);
        assert_eq!(ids.len(), text.chars().count());
        assert!(
            ids.iter()
                .all(|&i| !is_special(i) && (i as usize) < t.vocab_size())
        );
        assert_eq!(t.decode(&ids), text);
    }

    #[test]
    fn vocabulary_independent_of_order() {
        let a = CharTokenizer::from_text("hello world. abc");
        let b = CharTokenizer::from_text("cba .dlrow olleh hhh");
        assert_eq!(a, b);
        assert_eq!(a.encode("hello"), b.encode("hello"));
        assert_eq!(CharTokenizer::from_chars(a.chars().to_vec()), a);
    }

    #[test]
    fn unknown_char_is_unk() {
        let t = CharTokenizer::from_text("abc");
        assert_eq!(t.encode("aqc"), vec![6, UNK, 8]);
        assert_eq!(t.decode(&[999]), "[UNK]");
    }

    #[test]
    fn distinct_char_cap() {
        // 5000 distinct chars; the first 100 appear three times, the next 4900 once.
        let mut text = String::new();
        let pool: Vec<char> = (0x4E00u32..0x4E00 + 5000)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(pool.len(), 5000);
        for &c in &pool[..100] {
            text.extend([c, c, c]);
        }
        // Append in reverse so ties are not accidentally resolved by insertion order.
        for &c in pool[100..].iter().rev() {
            text.push(c);
        }
        let t = CharTokenizer::from_text(&text);
        assert_eq!(t.vocab_size(), MAX_VOCAB);
        // Frequent chars all kept; among the ties, the lowest chars win.
        for &c in &pool[..100] {
            assert!(t.id_of(c).is_some());
        }
        assert!(t.id_of(pool[100 + 3989]).is_some());
        assert!(t.id_of(pool[100 + 3990]).is_none());
        assert_eq!(t.encode(&pool[4999].to_string()), vec![UNK]);
        // Exactly at the cap nothing is dropped.
        let t2 = CharTokenizer::from_text(&pool[..4090].iter().collect::<String>());
        assert_eq!(t2.vocab_size(), MAX_VOCAB);
    }
}
