//! Bigram-Backcopy sequences (Guo et al. 2024, "Active-dormant attention heads",
//! arXiv 2410.13835; their `BBM/data.py`, class `bbm`): a task on which attention is useful
//! only at a few positions, so a head must learn to do nothing everywhere else.
//!
//! Characters follow a source text's bigram table, except right after one of the `k` most
//! frequent characters (the triggers): there the next character copies the one *before* the
//! trigger. Predicting a copy needs attention to look two tokens back; every other prediction
//! is a bigram lookup that attention can only disturb. In Guo's runs the heads park on the
//! fixed first token (BOS) for non-trigger queries and shrink its value within a few hundred
//! steps: the no-op mechanism the paper's fixes target, forced quickly.
//!
//! Each segment starts afresh (first character from the unigram marginal without triggers),
//! because some trigger cycles (`e e e …`) are absorbing: in one continuous stream they
//! would eventually fill it. A segment is exactly one model window, so every row of a batch
//! starts at a segment start, right after the model's own \[BOS\]/\[CLS\].
//!
//! Only integer arithmetic and the run's [`Rng`], so native and browser builds generate the
//! same bits.

use std::collections::HashMap;

use crate::rng::Rng;

/// The bigram statistics of a tokenized source text.
#[derive(Clone, Debug)]
pub struct BigramTable {
    /// The `k` most frequent ids, most frequent first (ties: lower id first).
    pub triggers: Vec<u32>,
    /// Cumulative counts of the unigram marginal without the triggers: `(id, cum)`.
    start: Vec<(u32, u64)>,
    /// Per id, cumulative counts of its successors: `(next, cum)`, in id order.
    next: HashMap<u32, Vec<(u32, u64)>>,
}

/// Why a source text cannot drive the task.
#[derive(Clone, Debug, PartialEq)]
pub enum BbError {
    /// Every character of the source is a trigger (or the source has none), so a segment
    /// has no first character.
    NoNonTrigger { distinct: usize, k: usize },
}

impl std::fmt::Display for BbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BbError::NoNonTrigger { distinct, k } => write!(
                f,
                "Bigram-Backcopy needs more distinct characters than triggers: the source has \
                 {distinct} and bb_k={k}; lower bb_k or use a richer text"
            ),
        }
    }
}

fn cumulative(counts: impl IntoIterator<Item = (u32, u64)>) -> Vec<(u32, u64)> {
    let mut items: Vec<(u32, u64)> = counts.into_iter().filter(|&(_, c)| c > 0).collect();
    items.sort_unstable_by_key(|&(id, _)| id);
    let mut total = 0;
    for item in &mut items {
        total += item.1;
        item.1 = total;
    }
    items
}

/// One draw from a cumulative table: `u` uniform in `0..total`, the first entry whose
/// cumulative count exceeds it.
fn draw(table: &[(u32, u64)], rng: &mut Rng) -> u32 {
    let total = table.last().map_or(0, |&(_, c)| c);
    debug_assert!(total > 0);
    // `below` takes 32 bits of the draw; counts beyond 2^32 are impossible (200 MB texts).
    let u = rng.below(total as usize) as u64;
    let i = table.partition_point(|&(_, c)| c <= u);
    table[i].0
}

impl BigramTable {
    /// Counts unigrams and bigrams of `ids` (a tokenized text) and picks the `k` most frequent
    /// ids as triggers.
    pub fn new(ids: &[u32], k: usize) -> Result<BigramTable, BbError> {
        let mut uni: HashMap<u32, u64> = HashMap::new();
        for &id in ids {
            *uni.entry(id).or_insert(0) += 1;
        }
        let mut by_count: Vec<(u32, u64)> = uni.iter().map(|(&i, &c)| (i, c)).collect();
        by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let triggers: Vec<u32> = by_count.iter().take(k).map(|&(i, _)| i).collect();
        if by_count.len() <= k {
            return Err(BbError::NoNonTrigger {
                distinct: by_count.len(),
                k,
            });
        }
        let start = cumulative(
            uni.iter()
                .filter(|(i, _)| !triggers.contains(i))
                .map(|(&i, &c)| (i, c)),
        );
        let mut pairs: HashMap<u32, HashMap<u32, u64>> = HashMap::new();
        for w in ids.windows(2) {
            *pairs.entry(w[0]).or_default().entry(w[1]).or_insert(0) += 1;
        }
        let next = pairs
            .into_iter()
            .map(|(a, succ)| (a, cumulative(succ)))
            .collect();
        Ok(BigramTable {
            triggers,
            start,
            next,
        })
    }

    pub fn is_trigger(&self, id: u32) -> bool {
        self.triggers.contains(&id)
    }

    /// One segment of `len` ids: the first from the non-trigger marginal, then the rule.
    pub fn segment(&self, len: usize, rng: &mut Rng, out: &mut Vec<u32>) {
        let base = out.len();
        for t in 0..len {
            let id = if t == 0 {
                draw(&self.start, rng)
            } else {
                let prev = out[base + t - 1];
                if self.is_trigger(prev) && t >= 2 {
                    out[base + t - 2]
                } else {
                    match self.next.get(&prev) {
                        Some(row) => draw(row, rng),
                        // The text's last character may have no successor.
                        None => draw(&self.start, rng),
                    }
                }
            };
            out.push(id);
        }
    }

    /// `n` segments of `len` ids, back to back.
    pub fn generate(&self, len: usize, n: usize, rng: &mut Rng) -> Vec<u32> {
        let mut out = Vec::with_capacity(len * n);
        for _ in 0..n {
            self.segment(len, rng, &mut out);
        }
        out
    }

    /// 1.0 where the token at `t` of a segment is a copy (the token before it is a trigger,
    /// `t >= 2`), i.e. where the model needs attention. `[segment.len()]`
    pub fn copy_positions(&self, segment: &[u32]) -> Vec<bool> {
        (0..segment.len())
            .map(|t| t >= 2 && self.is_trigger(segment[t - 1]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn ids(text: &str) -> Vec<u32> {
        text.chars().map(|c| c as u32).collect()
    }

    #[test]
    fn copies_follow_triggers_and_everything_else_is_a_seen_bigram() {
        let src = ids("the cat sat on the mat, then the hat ate the rat. "
            .repeat(20)
            .as_str());
        let table = BigramTable::new(&src, 3).unwrap();
        // ' ' then 't' then 'e'/'a' are the most frequent here; ties go to the lower id.
        assert_eq!(table.triggers[0], ' ' as u32);
        assert_eq!(table.triggers.len(), 3);
        let seen: std::collections::HashSet<(u32, u32)> =
            src.windows(2).map(|w| (w[0], w[1])).collect();
        let mut rng = Rng::stream(7, Stream::Data);
        let seg_len = 40;
        let data = table.generate(seg_len, 200, &mut rng);
        assert_eq!(data.len(), seg_len * 200);
        let (mut copies, mut bigrams) = (0, 0);
        for seg in data.chunks(seg_len) {
            assert!(!table.is_trigger(seg[0]), "a segment starts on a trigger");
            let copy = table.copy_positions(seg);
            for t in 1..seg.len() {
                if copy[t] {
                    assert_eq!(seg[t], seg[t - 2], "copy at {t} of {seg:?}");
                    copies += 1;
                } else {
                    assert!(seen.contains(&(seg[t - 1], seg[t])), "unseen bigram at {t}");
                    bigrams += 1;
                }
            }
        }
        // Both rules occur often; with 3 triggers in this text, copies are a large minority.
        assert!(
            copies > 1000 && bigrams > 1000,
            "{copies} copies, {bigrams} bigrams"
        );
        // The same seed gives the same data; another seed does not.
        let again = table.generate(seg_len, 200, &mut Rng::stream(7, Stream::Data));
        assert_eq!(again, data);
        let other = table.generate(seg_len, 200, &mut Rng::stream(8, Stream::Data));
        assert_ne!(other, data);
    }

    #[test]
    fn a_source_with_no_non_trigger_is_refused() {
        let err = BigramTable::new(&ids("ababab"), 2).unwrap_err();
        assert_eq!(err, BbError::NoNonTrigger { distinct: 2, k: 2 });
        assert!(err.to_string().contains("bb_k=2"));
        assert!(BigramTable::new(&ids("ababab"), 1).is_ok());
    }
}
