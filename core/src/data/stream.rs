//! A corpus too large to hold: a text file of many GB, read a window at a time.
//!
//! Opening scans the file once in fixed-size chunks (checking that it is text and counting
//! its characters for the vocabulary); after that each batch reads only its own windows, so
//! memory stays bounded by the chunk size and the batch whatever the file's size. The last
//! `val_fraction` of the bytes is the validation split, as with an in-memory file.
//!
//! Windows start at byte offsets drawn from the run's order stream, moved forward to the
//! next character boundary; a `\r` is dropped (so CRLF files read as LF files do).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;

use crate::data::DataError;
use crate::data::text_file::{MAX_CONTROL_FRACTION, MIN_CHARS};
use crate::data::tokenizer::{CharTokenizer, MAX_VOCAB, NUM_SPECIAL};
use crate::rng::Rng;

/// Bytes read per chunk of the opening scan.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A text file read by windows.
pub struct StreamCorpus {
    name: String,
    file: Mutex<std::fs::File>,
    /// Byte range `[start, end)` of the training split.
    train: (u64, u64),
    /// Byte range of the validation split.
    val: (u64, u64),
    pub tokenizer: CharTokenizer,
}

impl StreamCorpus {
    /// Scans `path` in chunks: checks it is UTF-8 text without NULs and mostly printable,
    /// counts its characters for the vocabulary, and splits it by bytes.
    pub fn open(path: &Path, val_fraction: f64) -> Result<StreamCorpus, DataError> {
        let name = path.display().to_string();
        let io = |source| DataError::Io {
            name: name.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(DataError::Empty { name });
        }
        let mut counts: HashMap<char, u64> = HashMap::new();
        let (mut chars, mut controls, mut at) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; CHUNK_BYTES];
        // Bytes of a character cut by the chunk boundary, carried into the next chunk.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            if let Some(off) = buf[..n].iter().position(|&b| b == 0) {
                return Err(DataError::Binary {
                    name,
                    nul_offset: Some(at as usize + off),
                    control_fraction: 0.0,
                });
            }
            carry.extend_from_slice(&buf[..n]);
            let valid = match std::str::from_utf8(&carry) {
                Ok(s) => s.len(),
                // An incomplete character at the end waits for the next chunk; anything
                // else is not UTF-8.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(e) => {
                    return Err(DataError::NotUtf8 {
                        name,
                        offset: at as usize - (carry.len() - n) + e.valid_up_to(),
                    });
                }
            };
            let text = std::str::from_utf8(&carry[..valid]).expect("checked above");
            for c in text.chars().filter(|&c| c != '\r' && c != '\u{FEFF}') {
                chars += 1;
                if c.is_control() && !matches!(c, '\n' | '\t') {
                    controls += 1;
                }
                *counts.entry(c).or_insert(0) += 1;
            }
            carry.drain(..valid);
            at += n as u64;
        }
        if !carry.is_empty() {
            return Err(DataError::NotUtf8 {
                name,
                offset: (len as usize).saturating_sub(carry.len()),
            });
        }
        let control_fraction = controls as f64 / chars.max(1) as f64;
        if control_fraction > MAX_CONTROL_FRACTION {
            return Err(DataError::Binary {
                name,
                nul_offset: None,
                control_fraction,
            });
        }
        if chars < MIN_CHARS as u64 {
            return Err(DataError::TooShort {
                name,
                chars: chars as usize,
                needed: MIN_CHARS,
            });
        }
        let mut vocab: Vec<char> = counts.keys().copied().collect();
        let cap = MAX_VOCAB - NUM_SPECIAL as usize;
        if vocab.len() > cap {
            vocab.sort_by(|a, b| counts[b].cmp(&counts[a]).then(a.cmp(b)));
            vocab.truncate(cap);
        }
        let split = len - (len as f64 * val_fraction).round() as u64;
        Ok(StreamCorpus {
            name,
            file: Mutex::new(file),
            train: (0, split),
            val: (split, len),
            tokenizer: CharTokenizer::from_chars(vocab),
        })
    }

    /// Checks that both splits hold windows of `window` characters with room to spare (a
    /// window may need up to 4 bytes a character).
    pub fn check_window(&self, window: usize) -> Result<(), DataError> {
        let need = (window * 4 + 4) as u64;
        let (t, v) = (self.train.1 - self.train.0, self.val.1 - self.val.0);
        if t < need || v < need {
            Err(DataError::SplitTooSmall {
                train_tokens: t as usize,
                val_tokens: v as usize,
                needed: need as usize,
            })
        } else {
            Ok(())
        }
    }

    /// `window` token ids starting at the first character boundary at or after `start`.
    /// Near the end of a split the window runs on into what follows (the file is one text).
    fn window(&self, start: u64, window: usize) -> Vec<u32> {
        let mut bytes = vec![0u8; window * 4 + 4];
        let n = {
            let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.seek(SeekFrom::Start(start));
            let mut got = 0;
            while got < bytes.len() {
                match f.read(&mut bytes[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            got
        };
        let bytes = &bytes[..n];
        // Skip a cut character's continuation bytes (10xxxxxx).
        let skip = bytes.iter().take_while(|&&b| b & 0xC0 == 0x80).count();
        let text = String::from_utf8_lossy(&bytes[skip..]);
        let mut ids: Vec<u32> = text
            .chars()
            .filter(|&c| c != '\r' && c != '\u{FEFF}' && c != '\u{FFFD}')
            .take(window)
            .map(|c| self.tokenizer.id_of(c).unwrap_or(CharTokenizer::UNK))
            .collect();
        // Only at the very end of the file can a window come up short.
        ids.resize(window, crate::data::tokenizer::SEP);
        ids
    }

    /// Rows of `window` tokens from the training split, one window each, from `order`; laid
    /// end to end with their starts (the form the batchers take).
    pub fn train_rows(
        &self,
        window: usize,
        count: usize,
        order: &mut Rng,
    ) -> (Vec<u32>, Vec<usize>) {
        let (a, b) = self.train;
        let last = b.saturating_sub((window * 4 + 4) as u64).max(a + 1);
        let starts: Vec<u64> = (0..count)
            // 64-bit multiply-shift: a file may hold more than 2^32 start positions.
            .map(|_| a + ((order.next_u64() as u128 * (last - a) as u128) >> 64) as u64)
            .collect();
        self.rows(&starts, window)
    }

    /// `count` evenly spaced windows of the validation split: the same ones every time.
    pub fn eval_rows(&self, window: usize, count: usize) -> (Vec<u32>, Vec<usize>) {
        let (a, b) = self.val;
        let span = b.saturating_sub((window * 4 + 4) as u64).max(a + 1) - a;
        let starts: Vec<u64> = (0..count)
            .map(|i| a + span * i as u64 / count.max(1) as u64)
            .collect();
        self.rows(&starts, window)
    }

    fn rows(&self, starts: &[u64], window: usize) -> (Vec<u32>, Vec<usize>) {
        let mut tokens = Vec::with_capacity(starts.len() * window);
        for &s in starts {
            tokens.extend(self.window(s, window));
        }
        (tokens, (0..starts.len()).map(|i| i * window).collect())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("qtlab-stream-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn windows_are_whole_characters_of_the_file_and_eval_is_fixed() {
        // Multi-byte characters across chunk and window boundaries, CRLF line ends.
        let line = "Größe ½ — naïve café.\r\n";
        let text = line.repeat(CHUNK_BYTES / line.len() + 500);
        let p = file("utf8.txt", text.as_bytes());
        let c = StreamCorpus::open(&p, 0.1).unwrap();
        let clean: String = text.replace('\r', "");
        assert_eq!(c.tokenizer, CharTokenizer::from_text(&clean));
        c.check_window(30).unwrap();
        let mut order = Rng::new(1);
        let (tokens, starts) = c.train_rows(30, 50, &mut order);
        assert_eq!(tokens.len(), 50 * 30);
        assert_eq!(starts[1], 30);
        for row in tokens.chunks(30) {
            let s = c.tokenizer.decode(row);
            assert!(!s.contains("[UNK]") && !s.contains('\r'), "{s}");
            assert!(clean.contains(&s), "not a piece of the file: {s}");
        }
        assert_eq!(c.eval_rows(30, 8), c.eval_rows(30, 8));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_binary_short_or_invalid_file_is_refused_by_name() {
        let cases: [(&str, &[u8]); 4] = [
            ("empty", b""),
            ("nul", b"abc\0def"),
            ("short", b"hello"),
            ("latin1", b"caf\xe9 au lait, caf\xe9 noir"),
        ];
        for (name, bytes) in cases {
            let p = file(name, bytes);
            let e = StreamCorpus::open(&p, 0.1).err().expect(name).to_string();
            assert!(e.contains(&p.display().to_string()), "{name}: {e}");
            let _ = std::fs::remove_file(p);
        }
    }
}
