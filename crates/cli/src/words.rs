//! Words: a line of input, or one command-line argument, split into byte-string words as
//! redis-cli splits them.

#[cfg(doc)]
use crate::bytes::quote;

/// One word of a command: its bytes, and whether any part of it was written in quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token {
    /// The word's bytes, escapes resolved.
    pub bytes: Vec<u8>,
    /// Some part of the word was quoted. A quoted word never names an operation, a quoted
    /// `"--absent"` is a value (not cas's "expect absent"), and scan takes its optional count
    /// only from an unquoted number.
    pub quoted: bool,
}

impl Token {
    /// The unquoted word `word`, taken as it is.
    pub fn bare(word: &str) -> Token {
        Token {
            bytes: word.as_bytes().to_vec(),
            quoted: false,
        }
    }
}

/// Whitespace between words: C's `isspace` in the "C" locale, as redis-cli splits.
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The 1-based column (in characters) of byte `at` of `line`, which starts a character.
fn column(line: &str, at: usize) -> usize {
    line.get(..at).map_or(at, |head| head.chars().count()) + 1
}

fn hex_digit(b: Option<&u8>) -> Option<u8> {
    match *b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Read the quoted part of a word that opens at `line[open]` (a `"` or a `'`), appending its
/// bytes to `out`; returns the index just after the closing quote.
fn quoted_part(line: &str, open: usize, out: &mut Vec<u8>) -> Result<usize, String> {
    let s = line.as_bytes();
    let q = s[open];
    let mut i = open + 1;
    loop {
        let Some(&c) = s.get(i) else {
            return Err(format!(
                "unbalanced quotes: the {} at column {} is never closed",
                q as char,
                column(line, open)
            ));
        };
        if c == q {
            return Ok(i + 1);
        }
        if c == b'\\' && q == b'"' {
            if let (Some(b'x'), Some(hi), Some(lo)) = (
                s.get(i + 1),
                hex_digit(s.get(i + 2)),
                hex_digit(s.get(i + 3)),
            ) {
                out.push(hi << 4 | lo);
                i += 4;
                continue;
            }
            if let Some(&e) = s.get(i + 1) {
                out.push(match e {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
                continue;
            }
        } else if c == b'\\' && q == b'\'' && s.get(i + 1) == Some(&b'\'') {
            out.push(b'\'');
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// Split a line of input into words, as redis-cli's `sdssplitargs` does.
///
/// Words are separated by whitespace. In a word, `"` opens a double-quoted part, with the
/// escapes `\n \r \t \b \a \\ \"` and `\xHH` (two hex digits; any other `\c` is `c`), and `'`
/// opens a single-quoted part, where only `\'` is an escape. A closing quote must be followed
/// by whitespace or the end of the line; a quote that is never closed is an error. An unquoted
/// `#` at the start of a word starts a comment that runs to the end of the line.
///
/// The error is one line, saying which column is at fault.
pub fn split_line(line: &str) -> Result<Vec<Token>, String> {
    let s = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while s.get(i).is_some_and(|&c| is_space(c)) {
            i += 1;
        }
        if i == s.len() || s[i] == b'#' {
            return Ok(tokens);
        }
        let mut token = Token {
            bytes: Vec::new(),
            quoted: false,
        };
        while let Some(&c) = s.get(i).filter(|&&c| !is_space(c)) {
            if c == b'"' || c == b'\'' {
                i = quoted_part(line, i, &mut token.bytes)?;
                token.quoted = true;
                if s.get(i).is_some_and(|&c| !is_space(c)) {
                    return Err(format!(
                        "the closing {} at column {} must be followed by a space or the end of the line",
                        c as char,
                        column(line, i - 1)
                    ));
                }
            } else {
                token.bytes.push(c);
                i += 1;
            }
        }
        tokens.push(token);
    }
}

/// One command-line argument (already split by the shell) as a word: taken as it is, except
/// that one starting with `"` or `'` is read as one quoted word by the rules of
/// [`split_line`] (so the shell argument `'"a\x00b"'` is the three bytes `a`, 0, `b`). Then
/// the argument must end with its closing quote.
///
/// Together with [`quote`], this makes what the binaries print usable as their arguments.
pub fn argv_token(arg: &str) -> Result<Token, String> {
    if !arg.starts_with(['"', '\'']) {
        return Ok(Token::bare(arg));
    }
    let mut bytes = Vec::new();
    let end = quoted_part(arg, 0, &mut bytes).map_err(|e| format!("argument {arg}: {e}"))?;
    if end != arg.len() {
        return Err(format!(
            "argument {arg} goes on after its closing quote (quote the whole argument)"
        ));
    }
    Ok(Token {
        bytes,
        quoted: true,
    })
}
