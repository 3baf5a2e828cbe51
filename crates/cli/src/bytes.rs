//! Showing byte strings: as one word that reads back to the same bytes, and as JSON.

use crate::words::Token;
#[cfg(doc)]
use crate::words::{argv_token, split_line};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Whether `b` can be printed as a bare word: non-empty printable ASCII without quotes or
/// backslashes, not starting with `#`.
fn is_bare(b: &[u8]) -> bool {
    b.first().is_some_and(|&c| c != b'#')
        && b.iter()
            .all(|&c| matches!(c, 0x21..=0x7e) && !matches!(c, b'"' | b'\'' | b'\\'))
}

/// `b` in double quotes, always (see [`quote`]).
pub(crate) fn quoted(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// Bytes as one word that [`split_line`] and [`argv_token`] read back to exactly these bytes:
/// bare when they are non-empty printable ASCII (`0x21..=0x7e`) without `"`, `'` or `\` and do
/// not start with `#`; else in double quotes, with `\n \r \t \a \b \\ \"` escaped, every other
/// byte below 0x20 or above 0x7e as `\xHH` (lower-case hex), and spaces as they are.
pub fn quote(b: &[u8]) -> String {
    if is_bare(b) {
        // Printable ASCII: one char per byte.
        b.iter().map(|&c| c as char).collect()
    } else {
        quoted(b)
    }
}

/// A word as an error message shows it: as [`quote`] would write it, but in quotes if it was
/// quoted (so that a quoted `"read"` does not look like the operation).
pub(crate) fn shown(t: &Token) -> String {
    if t.quoted {
        quoted(&t.bytes)
    } else {
        quote(&t.bytes)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 alphabet, with `=` padding).
pub(crate) fn base64(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The bytes of standard padded base64 `s`; `None` unless `s` is exactly what [`base64`]
/// writes for some bytes (padding in place, unused bits zero).
pub(crate) fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 4 != 0 {
        return None;
    }
    let chunks = s.len() / 4;
    let mut out = Vec::with_capacity(chunks * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && ci + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk[..4 - pad].iter().enumerate() {
            let v = BASE64.iter().position(|&x| x == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        if n & ((1u32 << (8 * pad)) - 1) != 0 {
            return None;
        }
        for i in 0..3 - pad {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Bytes as JSON: a string when they are UTF-8, else `{"base64": "<standard padded base64>"}`.
pub fn json_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "base64": base64(b) }),
    }
}

/// The bytes [`json_bytes`] made `v` from: a string's UTF-8, or the decoded `base64` of an
/// object that has only that field. `None` for anything else.
pub fn bytes_from_json(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(m) if m.len() == 1 => unbase64(m.get("base64")?.as_str()?),
        _ => None,
    }
}
