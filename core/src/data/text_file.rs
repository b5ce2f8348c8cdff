//! Loading a user's own text (a file on the CLI, an upload in the browser).
//!
//! Anything can be thrown at this: an empty file, a PDF, a Latin-1 file, a 2 GB log. Each
//! gets a [`DataError`] whose message names the file and says what to do, instead of a
//! tokenizer with 4000 garbage symbols or a model that trains on 12 characters.

use crate::data::DataError;
use std::path::Path;

/// Largest file accepted: the whole text is held in memory, tokenized, in the browser too.
pub const MAX_FILE_BYTES: usize = 200 * 1024 * 1024;

/// Fewest characters worth training on: below this a model only memorises.
pub const MIN_CHARS: usize = 1000;

/// Above this fraction of control characters (other than \n, \r, \t) a file is treated as
/// binary: real text has almost none, binary formats decoded as UTF-8 have many.
pub const MAX_CONTROL_FRACTION: f64 = 0.10;

/// Reads and checks a text file; see [`text_from_bytes`] for the checks and the clean-up.
/// The size is checked before reading, so a huge file is refused without loading it.
pub fn load_text(path: &Path) -> Result<String, DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        name: name.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is a directory, not a file",
        )));
    }
    check_size(&name, meta.len())?;
    let bytes = std::fs::read(path).map_err(io)?;
    text_from_bytes(&name, &bytes)
}

/// Checks that `bytes` (named `name` in messages) are usable text and returns it.
///
/// In order: not too large, not empty, no NUL byte, valid UTF-8, not mostly control
/// characters, not only whitespace, at least [`MIN_CHARS`] characters. A leading UTF-8
/// byte-order mark is dropped and "\r\n" becomes "\n", so a file saved on Windows gives
/// the same tokens as on any other system.
pub fn text_from_bytes(name: &str, bytes: &[u8]) -> Result<String, DataError> {
    check_size(name, bytes.len() as u64)?;
    if bytes.is_empty() {
        return Err(DataError::Empty {
            name: name.to_string(),
        });
    }
    // NUL first: it is valid UTF-8, but no text file contains it, and "binary" is a more
    // useful message than "invalid UTF-8 at byte 0" for an image or a zip.
    if let Some(off) = bytes.iter().position(|&b| b == 0) {
        return Err(DataError::Binary {
            name: name.to_string(),
            nul_offset: Some(off),
            control_fraction: 0.0,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
        name: name.to_string(),
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);

    let mut chars = 0usize;
    let mut controls = 0usize;
    for c in text.chars() {
        chars += 1;
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            controls += 1;
        }
    }
    let control_fraction = if chars == 0 {
        0.0
    } else {
        controls as f64 / chars as f64
    };
    if control_fraction > MAX_CONTROL_FRACTION {
        return Err(DataError::Binary {
            name: name.to_string(),
            nul_offset: None,
            control_fraction,
        });
    }
    if text.trim().is_empty() {
        return Err(DataError::Empty {
            name: name.to_string(),
        });
    }
    let text = text.replace("\r\n", "\n");
    let chars = text.chars().count();
    if chars < MIN_CHARS {
        return Err(DataError::TooShort {
            name: name.to_string(),
            chars,
            needed: MIN_CHARS,
        });
    }
    Ok(text)
}

fn check_size(name: &str, bytes: u64) -> Result<(), DataError> {
    if bytes > MAX_FILE_BYTES as u64 {
        Err(DataError::TooLarge {
            name: name.to_string(),
            bytes,
            max: MAX_FILE_BYTES,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file under the temp dir, removed on drop; the name is unique per process and test.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir()
                .join(format!("qtlab_text_file_{}_{tag}.txt", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn good_text() -> String {
        "The quick brown fox jumps over the lazy dog. ".repeat(30)
    }

    #[test]
    fn good_file_loads() {
        let f = TempFile::new("good", good_text().replace(". ", ".\r\n").as_bytes());
        let t = load_text(&f.0).unwrap();
        assert!(t.starts_with("The quick brown fox") && !t.contains('\r'));
        assert!(t.chars().count() >= MIN_CHARS);
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), good_text().as_bytes()].concat();
        assert_eq!(text_from_bytes("bom.txt", &with_bom).unwrap(), good_text());
    }

    #[test]
    fn missing_file() {
        let path = std::env::temp_dir().join(format!("qtlab_missing_{}.txt", std::process::id()));
        let e = load_text(&path).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("qtlab_missing_") && msg.contains("could not read"),
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let dir = load_text(&std::env::temp_dir()).unwrap_err();
        assert!(matches!(dir, DataError::Io { .. }), "{dir:?}");
    }

    #[test]
    fn empty_and_whitespace_only() {
        let f = TempFile::new("empty", b"");
        let e = load_text(&f.0).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
        assert!(e.to_string().contains("empty"));
        let f = TempFile::new("blank", " \n\n\t  \r\n ".repeat(300).as_bytes());
        let e = load_text(&f.0).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    }

    #[test]
    fn not_utf8_reports_offset() {
        let mut bytes = good_text().into_bytes();
        bytes[123] = 0xE9; // Latin-1 'é'
        let f = TempFile::new("latin1", &bytes);
        let e = load_text(&f.0).unwrap_err();
        assert!(matches!(e, DataError::NotUtf8 { offset: 123, .. }), "{e:?}");
        assert!(e.to_string().contains("offset 123"), "{e}");
    }

    #[test]
    fn binary_files() {
        let mut bytes = good_text().into_bytes();
        bytes[500] = 0;
        let f = TempFile::new("nul", &bytes);
        let e = load_text(&f.0).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Binary {
                    nul_offset: Some(500),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("binary"), "{e}");
        // Valid UTF-8 but 20 % control characters.
        let mut s = String::new();
        for i in 0..2000 {
            s.push(if i % 5 == 0 { '\u{1}' } else { 'a' });
        }
        let e = text_from_bytes("ctl.bin", s.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Binary {
                    nul_offset: None,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("20%"), "{e}");
        // Tabs and newlines are not control characters for this purpose.
        let ok = "a\tb\r\nc\n".repeat(300);
        assert!(text_from_bytes("tabs.txt", ok.as_bytes()).is_ok());
    }

    #[test]
    fn too_short() {
        let f = TempFile::new("short", "Hello world.".as_bytes());
        let e = load_text(&f.0).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TooShort {
                    chars: 12,
                    needed: MIN_CHARS,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("12") && msg.contains("1000") && msg.contains("qtlab_text_file"),
            "{msg}"
        );
        // Counted in characters, not bytes: 999 two-byte chars are still too short.
        let e = text_from_bytes("x", "é".repeat(999).as_bytes()).unwrap_err();
        assert!(matches!(e, DataError::TooShort { chars: 999, .. }), "{e:?}");
        assert!(text_from_bytes("x", "é".repeat(1000).as_bytes()).is_ok());
    }

    #[test]
    fn too_large() {
        assert!(check_size("a", MAX_FILE_BYTES as u64).is_ok());
        let e = check_size("big.txt", MAX_FILE_BYTES as u64 + 1).unwrap_err();
        assert!(matches!(e, DataError::TooLarge { .. }), "{e:?}");
        assert!(
            e.to_string().contains("big.txt") && e.to_string().contains("200 MiB"),
            "{e}"
        );
        // A sparse file: refused from its metadata, without reading 200 MiB.
        let f = TempFile::new("huge", b"");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f.0)
            .unwrap()
            .set_len(MAX_FILE_BYTES as u64 + 1)
            .unwrap();
        let e = load_text(&f.0).unwrap_err();
        assert!(matches!(e, DataError::TooLarge { .. }), "{e:?}");
    }
}
