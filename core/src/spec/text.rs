//! Text helpers of the spec: parsing and echoing values, range checks, the shortest exact float
//! form, and percent-encoding.

use std::str::FromStr;

use super::SpecError;

/// Error messages echo at most this many characters of user input.
const MAX_ECHO_CHARS: usize = 64;

/// User input as shown in messages: at most [`MAX_ECHO_CHARS`] characters (cut on a char
/// boundary) so a megabyte of garbage does not become a megabyte of error.
pub(crate) fn echo(text: &str) -> String {
    if text.is_empty() {
        // A field must never be blank: `=5` names "(empty)" rather than nothing.
        return "(empty)".to_owned();
    }
    let mut chars = text.chars();
    let mut shown: String = chars.by_ref().take(MAX_ECHO_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

pub(super) fn parse_num<T: FromStr>(key: &str, value: &str) -> Result<T, SpecError> {
    value.parse().map_err(|_| {
        SpecError::new(
            key,
            format!(
                "expected a non-negative whole number, got `{}`",
                echo(value)
            ),
        )
    })
}

/// Parses a finite float. Rust accepts both `0.001` and `1e-3`, and also `nan`/`inf`, which
/// are refused here because they cannot describe a run.
pub(super) fn parse_f64(key: &str, value: &str) -> Result<f64, SpecError> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(SpecError::new(
            key,
            format!("expected a finite number, got `{}`", echo(value)),
        )),
        Err(_) => Err(SpecError::new(
            key,
            format!("expected a number, got `{}`", echo(value)),
        )),
    }
}

pub(super) fn parse_bool(key: &str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::new(
            key,
            format!("expected one of true|false|1|0, got `{}`", echo(value)),
        )),
    }
}

pub(super) fn parse_text<T: FromStr<Err = String>>(key: &str, value: &str) -> Result<T, SpecError> {
    value
        .parse()
        .map_err(|message| SpecError::new(key, message))
}

/// A value for a human to read, not to parse back: 4 decimals, or 4 significant digits
/// when that would round a small value away.
pub(super) fn approx(x: f64) -> String {
    if x.abs() >= 1e-3 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// The shorter of Rust's `{}` and `{:e}` forms (`{}` on a tie). Both print the shortest
/// digits that parse back to the same f64, so the canonical text round-trips bit-exactly;
/// the choice only keeps `1e-8` from being spelled `0.00000001`.
pub(super) fn format_f64(x: f64) -> String {
    let plain = format!("{x}");
    let sci = format!("{x:e}");
    if plain.len() > sci.len() { sci } else { plain }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'/' | b'-')
}

pub(super) fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Decodes every `%XX`; a `%` not followed by two hex digits, or bytes that are not UTF-8
/// once decoded, are errors rather than being passed through, so a mangled URL is noticed.
pub(crate) fn percent_decode(raw: &str) -> Result<String, String> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi << 4 | lo),
                _ => None,
            };
            let Some(decoded) = decoded else {
                return Err(format!(
                    "invalid percent-escape in `{}` (expected `%` and two hex digits)",
                    echo(raw)
                ));
            };
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("`{}` is not valid UTF-8 after percent-decoding", echo(raw)))
}
