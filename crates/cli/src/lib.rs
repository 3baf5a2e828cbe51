//! The command-line text layer shared by the binaries: how a clap error becomes help output or
//! one line on stderr ([`clap_outcome`]); how a line of input or a command-line argument
//! becomes words ([`split_line`], [`argv_token`], quoting as redis-cli does); how words become
//! operations ([`parse_ops`], driven by the [`VERBS`] table); how byte strings are shown
//! ([`quote`], [`json_bytes`]); and how an answer becomes text or JSON ([`render_text`],
//! [`render_json`], [`render_stats`], [`stats_json`]).
//!
//! # Byte strings as words
//!
//! Keys and values are byte strings. On a line, words are separated by whitespace; a word may
//! be written in double quotes, with the escapes `\n \r \t \b \a \\ \"` and `\xHH`, or in
//! single quotes, where only `\'` is an escape ([`split_line`], like redis-cli's
//! `sdssplitargs`). [`quote`] writes bytes back in that form, bare when they can be: a key or
//! value printed by a binary can be given back to it as it is, on a line or (thanks to
//! [`argv_token`]) as one shell argument.
//!
//! # No verb is named here
//!
//! A verb's name, its arguments and their kinds come from [`VERBS`] and [`Shape::args`]; the
//! arguments become an [`Op`] (and an [`Op`]'s arguments are read back) through the request
//! codec of [`shmkv::wire`], the one place that maps a verb's arguments to its fields. Answers
//! are rendered by their [`Outcome`] kind. So a verb added to the table is parsed, labelled and
//! rendered with no edit here (unless it brings a new kind of answer).

// The programs need real shared memory: under `--cfg loom` (model checking) this crate is
// empty and its binaries are stubs.
#![cfg(not(loom))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

use serde_json::{Map, Value, json};
use shmkv::stats::Stats;
use shmkv::wire::{
    self, Arg, ArgKind, ErrorCode, Field, HEADER_LEN, Limits, Op, Outcome, ReplyKind, Request,
    Shape, VERBS, VerbInfo,
};
use std::fmt::Write as _;
use std::process::ExitCode;

/// Turn a clap parse error into what the binaries do with it: `--help` and `--version` are
/// printed and end the program successfully (`Ok`); any other error becomes its first line,
/// without clap's `error: ` prefix (`Err`), for the caller to print as its one-line usage error.
pub fn clap_outcome(e: clap::Error) -> Result<ExitCode, String> {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Ok(ExitCode::SUCCESS);
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("bad command line");
    Err(first.strip_prefix("error: ").unwrap_or(first).to_string())
}

// ---------------------------------------------------------------------------------------------
// Words.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Showing bytes.
// ---------------------------------------------------------------------------------------------

/// Whether `b` can be printed as a bare word: non-empty printable ASCII without quotes or
/// backslashes, not starting with `#`.
fn is_bare(b: &[u8]) -> bool {
    b.first().is_some_and(|&c| c != b'#')
        && b.iter()
            .all(|&c| matches!(c, 0x21..=0x7e) && !matches!(c, b'"' | b'\'' | b'\\'))
}

/// `b` in double quotes, always (see [`quote`]).
fn quoted(b: &[u8]) -> String {
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
fn shown(t: &Token) -> String {
    if t.quoted {
        quoted(&t.bytes)
    } else {
        quote(&t.bytes)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 alphabet, with `=` padding).
fn base64(b: &[u8]) -> String {
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
fn unbase64(s: &str) -> Option<Vec<u8>> {
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

// ---------------------------------------------------------------------------------------------
// Parsing operations.
// ---------------------------------------------------------------------------------------------

/// One parsed operation, and the label its answer is printed after: the verb's name and its
/// arguments as words (keys and values through [`quote`]), e.g. `insert "a b" 2`. A label is
/// itself a line that parses back to the same operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The verb and its arguments, as words.
    pub label: String,
    /// The operation.
    pub op: Op,
}

/// The unquoted word that, as cas's expected value, means "expect the key to be absent".
pub const ABSENT: &str = "--absent";

/// Scan's count when the command leaves it out.
pub const SCAN_COUNT: u32 = 10;

/// One argument's value, by [`ArgKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum ArgValue {
    /// A key or a value (of kind `Key`, `Value` or `Expected`).
    Bytes(Vec<u8>),
    /// An `Expected` that says "absent".
    Absent,
    /// A `U64`.
    U64(u64),
    /// An `I64`.
    I64(i64),
    /// A `PositiveU32`.
    U32(u32),
}

/// The value an argument of `shape` (by position) takes when the command leaves it out, for
/// the arguments that may be left out: scan's count. Such an argument is taken only from an
/// unquoted decimal number, so that the next operation may follow directly.
fn optional_default(shape: Shape, index: usize) -> Option<ArgValue> {
    match (shape, index) {
        (Shape::CursorCount, 1) => Some(ArgValue::U32(SCAN_COUNT)),
        _ => None,
    }
}

/// "a" or "an" before `word`.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// An argument as "needs ..." names it: "a key", "a value", "an expected value (or
/// --absent)", "a new value", "a bucket", "a number n".
fn describe(arg: &Arg) -> String {
    let name = arg.name;
    match arg.kind {
        ArgKind::Key | ArgKind::Value if name == "key" || name == "value" => {
            format!("{} {name}", article(name))
        }
        ArgKind::Key => format!("{} {name} key", article(name)),
        ArgKind::Value => format!("{} {name} value", article(name)),
        ArgKind::Expected => format!("{} {name} value (or {ABSENT})", article(name)),
        _ if name.len() == 1 => format!("a number {name}"),
        _ => format!("{} {name}", article(name)),
    }
}

/// A verb's usage: `insert <key> <value>`, `cas <key> <expected>|--absent <new>`,
/// `scan <cursor> [<count>]`.
fn usage(info: &VerbInfo) -> String {
    let mut s = info.name.to_string();
    for (i, arg) in info.shape.args().iter().enumerate() {
        let word = match arg.kind {
            ArgKind::Expected => format!("<{}>|{ABSENT}", arg.name),
            _ => format!("<{}>", arg.name),
        };
        if optional_default(info.shape, i).is_some() {
            let _ = write!(s, " [{word}]");
        } else {
            let _ = write!(s, " {word}");
        }
    }
    s
}

/// `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
fn or_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Every verb name, for "unknown operation".
fn verb_names() -> String {
    VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}

/// The verb whose name the words at the start of `tokens` spell (unquoted), and how many words
/// it takes; the longest name wins.
fn match_verb(tokens: &[Token]) -> Result<(&'static VerbInfo, usize), String> {
    let spells = |info: &VerbInfo| {
        let words: Vec<&str> = info.name.split(' ').collect();
        (words.len() <= tokens.len()
            && words
                .iter()
                .zip(tokens)
                .all(|(w, t)| !t.quoted && t.bytes == w.as_bytes()))
        .then_some(words.len())
    };
    if let Some(found) = VERBS
        .iter()
        .filter_map(|info| spells(info).map(|n| (info, n)))
        .max_by_key(|&(_, n)| n)
    {
        return Ok(found);
    }
    let first = &tokens[0];
    // The first word of longer names ("threads"): say what may follow it.
    let group: Vec<&VerbInfo> = VERBS
        .iter()
        .filter(|v| {
            !first.quoted && v.name.split_once(' ').map(|(w, _)| w.as_bytes()) == Some(&first.bytes)
        })
        .collect();
    if !group.is_empty() {
        let word = shown(first);
        return Err(match tokens.get(1) {
            None => {
                let rests: Vec<String> = group
                    .iter()
                    .map(|v| usage(v)[word.len() + 1..].to_string())
                    .collect();
                format!("'{word}' needs {}", or_list(&rests))
            }
            Some(next) => {
                let uses: Vec<String> = group.iter().map(|v| usage(v)).collect();
                format!("unknown '{word} {}': use {}", shown(next), or_list(&uses))
            }
        });
    }
    Err(format!(
        "unknown operation '{}' (operations: {})",
        shown(first),
        verb_names()
    ))
}

/// Why a word is not a number.
enum NumberError {
    /// Not digits (with a sign where one is allowed).
    Syntax,
    /// Digits, but too large.
    Range,
}

/// Decimal digits only.
fn unsigned(b: &[u8]) -> Result<u64, NumberError> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::Syntax);
    }
    // ASCII digits: valid UTF-8; the only parse error left is overflow.
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(NumberError::Range)
}

/// An optional `+` or `-`, then decimal digits.
fn signed(b: &[u8]) -> Result<i64, NumberError> {
    let digits = b
        .strip_prefix(b"+")
        .or_else(|| b.strip_prefix(b"-"))
        .unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::Syntax);
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(NumberError::Range)
}

/// The argument `arg` of verb `info` from word `t`.
fn parse_arg(info: &VerbInfo, arg: &Arg, t: &Token) -> Result<ArgValue, String> {
    let op = info.name;
    let name = arg.name;
    let syntax = |what: &str| format!("{name} '{}' of '{op}' is not {what}", shown(t));
    let range = |range: &str| format!("{name} '{}' of '{op}' is out of range ({range})", shown(t));
    Ok(match arg.kind {
        ArgKind::Key if t.bytes.is_empty() => {
            return Err(format!("empty key for '{op}' (a key is at least 1 byte)"));
        }
        ArgKind::Key | ArgKind::Value => ArgValue::Bytes(t.bytes.clone()),
        ArgKind::Expected if !t.quoted && t.bytes == ABSENT.as_bytes() => ArgValue::Absent,
        ArgKind::Expected => ArgValue::Bytes(t.bytes.clone()),
        ArgKind::U64 => match unsigned(&t.bytes) {
            Ok(n) => ArgValue::U64(n),
            Err(NumberError::Syntax) => return Err(syntax("a non-negative integer")),
            Err(NumberError::Range) => return Err(range(&format!("0..={}", u64::MAX))),
        },
        ArgKind::I64 => match signed(&t.bytes) {
            Ok(n) => ArgValue::I64(n),
            Err(NumberError::Syntax) => return Err(syntax("an integer")),
            Err(NumberError::Range) => {
                return Err(range(&format!("{}..={}", i64::MIN, i64::MAX)));
            }
        },
        ArgKind::PositiveU32 => match unsigned(&t.bytes).map(u32::try_from) {
            Ok(Ok(0)) => {
                return Err(format!(
                    "{name} '0' of '{op}' must be at least 1 (1..={})",
                    u32::MAX
                ));
            }
            Ok(Ok(n)) => ArgValue::U32(n),
            Err(NumberError::Syntax) => return Err(syntax("a positive integer")),
            Ok(Err(_)) | Err(NumberError::Range) => {
                return Err(range(&format!("1..={}", u32::MAX)));
            }
        },
    })
}

/// The operation of verb `info` with arguments `args` (in [`Shape::args`] order), built by
/// decoding the request the wire format lays out for them.
fn build_op(info: &VerbInfo, args: &[ArgValue]) -> Result<Op, String> {
    let mut buf = Vec::with_capacity(HEADER_LEN + 32);
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.push(info.tag);
    let absent = args.contains(&ArgValue::Absent);
    buf.push(if absent { wire::FLAG_ABSENT } else { 0 });
    buf.extend_from_slice(&[0, 0]);
    for a in args {
        match a {
            ArgValue::Bytes(b) => {
                let len = u32::try_from(b.len()).map_err(|_| {
                    format!("'{}': a word of {} bytes is too long", info.name, b.len())
                })?;
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(b);
            }
            ArgValue::Absent => buf.extend_from_slice(&0u32.to_le_bytes()),
            ArgValue::U64(n) => buf.extend_from_slice(&n.to_le_bytes()),
            ArgValue::I64(n) => buf.extend_from_slice(&n.to_le_bytes()),
            ArgValue::U32(n) => buf.extend_from_slice(&n.to_le_bytes()),
        }
    }
    wire::decode_request(&buf, &Limits::UNLIMITED)
        .map(|r| r.op)
        .map_err(|e| format!("'{}': {e}", info.name))
}

/// The first `n` bytes of `rest`, which moves past them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (field, tail) = rest
        .split_at_checked(n)
        .expect("the request encoder writes every argument of the verb's shape");
    *rest = tail;
    field
}

/// The next `N` bytes of `rest` as an array.
fn take_array<const N: usize>(rest: &mut &[u8]) -> [u8; N] {
    take(rest, N).try_into().expect("take gives N bytes")
}

/// The arguments of `op`, in [`Shape::args`] order, read from its wire encoding.
fn op_args(op: &Op) -> Vec<ArgValue> {
    let mut buf = Vec::new();
    wire::encode_request(
        &Request {
            id: 0,
            op: op.clone(),
        },
        &mut buf,
    );
    let absent = buf[9] & wire::FLAG_ABSENT != 0;
    let mut rest = &buf[HEADER_LEN..];
    let shape = op.verb().info().shape;
    let mut args = Vec::with_capacity(shape.args().len());
    for arg in shape.args() {
        args.push(match arg.kind {
            ArgKind::Key | ArgKind::Value | ArgKind::Expected => {
                let len = u32::from_le_bytes(take_array(&mut rest));
                let b = take(&mut rest, len as usize);
                if arg.kind == ArgKind::Expected && absent {
                    ArgValue::Absent
                } else {
                    ArgValue::Bytes(b.to_vec())
                }
            }
            ArgKind::U64 => ArgValue::U64(u64::from_le_bytes(take_array(&mut rest))),
            ArgKind::I64 => ArgValue::I64(i64::from_le_bytes(take_array(&mut rest))),
            ArgKind::PositiveU32 => ArgValue::U32(u32::from_le_bytes(take_array(&mut rest))),
        });
    }
    args
}

/// An argument as a word of a label.
fn arg_word(arg: &Arg, v: &ArgValue) -> String {
    match v {
        // A value that reads "--absent" is quoted where the bare word would mean "absent".
        ArgValue::Bytes(b) if arg.kind == ArgKind::Expected && b == ABSENT.as_bytes() => quoted(b),
        ArgValue::Bytes(b) => quote(b),
        ArgValue::Absent => ABSENT.to_string(),
        ArgValue::U64(n) => n.to_string(),
        ArgValue::I64(n) => n.to_string(),
        ArgValue::U32(n) => n.to_string(),
    }
}

/// The label of verb `info` with `args`.
fn label(info: &VerbInfo, args: &[ArgValue]) -> String {
    let mut s = info.name.to_string();
    for (arg, v) in info.shape.args().iter().zip(args) {
        s.push(' ');
        s.push_str(&arg_word(arg, v));
    }
    s
}

/// Whether `t` may be an optional number: unquoted decimal digits.
fn is_unquoted_number(t: &Token) -> bool {
    !t.quoted && !t.bytes.is_empty() && t.bytes.iter().all(u8::is_ascii_digit)
}

/// Parse the operations in `tokens` (a command line after the client id, or one line of the
/// shell or of standard input), in order. Each is a verb name from [`VERBS`] (one or two
/// unquoted words) followed by the arguments of its [`Shape`]: a key (not empty), a value (may
/// be empty: `""`), cas's expected value (the unquoted word `--absent` expects the key to be
/// absent), or a decimal number (`+` or `-` allowed for a signed one). Scan's count may be left
/// out ([`SCAN_COUNT`]): it is taken only from an unquoted decimal number. An empty list is not
/// an error here.
pub fn parse_ops(tokens: &[Token]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (info, words) = match_verb(&tokens[i..])?;
        i += words;
        let mut args = Vec::with_capacity(info.shape.args().len());
        for (n, arg) in info.shape.args().iter().enumerate() {
            if let Some(default) = optional_default(info.shape, n) {
                if !tokens.get(i).is_some_and(is_unquoted_number) {
                    args.push(default);
                    continue;
                }
            }
            let Some(t) = tokens.get(i) else {
                return Err(format!("'{}' needs {}", info.name, describe(arg)));
            };
            args.push(parse_arg(info, arg, t)?);
            i += 1;
        }
        let op = build_op(info, &args)?;
        items.push(Item {
            label: label(info, &args),
            op,
        });
    }
    Ok(items)
}

/// The words a shell may offer to complete after the complete words `before` of a line, by
/// walking them as [`parse_ops`] does: where an operation may start, the first word of every
/// verb name (once each, in [`VERBS`] order); after the first word of two-word names, their
/// second words (`start`, `stop` after `threads`); where an argument is due, nothing. An
/// unknown word is skipped.
pub fn next_words(before: &[Token]) -> Vec<&'static str> {
    let mut i = 0;
    while i < before.len() {
        let Ok((info, n)) = match_verb(&before[i..]) else {
            if i + 1 == before.len() {
                let t = &before[i];
                let seconds: Vec<&'static str> = VERBS
                    .iter()
                    .filter_map(|v| {
                        let (first, rest) = v.name.split_once(' ')?;
                        (!t.quoted && first.as_bytes() == t.bytes).then_some(rest)
                    })
                    .collect();
                if !seconds.is_empty() {
                    return seconds;
                }
            }
            i += 1;
            continue;
        };
        i += n;
        for k in 0..info.shape.args().len() {
            if optional_default(info.shape, k).is_some() {
                if before.get(i).is_some_and(is_unquoted_number) {
                    i += 1;
                }
                continue;
            }
            if i == before.len() {
                return Vec::new();
            }
            i += 1;
        }
    }
    let mut firsts: Vec<&'static str> = Vec::new();
    for v in &VERBS {
        let first = v.name.split(' ').next().unwrap_or(v.name);
        if !firsts.contains(&first) {
            firsts.push(first);
        }
    }
    firsts
}

/// Check the keys and values of `item` against the server's `limits`: Err is one line, e.g.
/// "key of 300 bytes is longer than the server's limit of 256 bytes (in 'insert')".
pub fn check_limits(item: &Item, limits: &Limits) -> Result<(), String> {
    let info = item.op.verb().info();
    for (arg, v) in info.shape.args().iter().zip(op_args(&item.op)) {
        let ArgValue::Bytes(b) = v else { continue };
        let (what, max) = match arg.kind {
            ArgKind::Key => (Field::Key, limits.max_key),
            _ => (Field::Value, limits.max_value),
        };
        if b.len() as u64 > u64::from(max) {
            let e = ErrorCode::TooLarge {
                what,
                len: b.len() as u64,
                max,
            };
            return Err(format!("{e} (in '{}')", info.name));
        }
    }
    Ok(())
}

/// The operations, their arguments and a line on each, from [`VERBS`]; then how to write byte
/// strings. For the binaries' `--help` and the shell's `help`.
pub fn operations_help() -> String {
    let usages: Vec<String> = VERBS.iter().map(usage).collect();
    let width = usages.iter().map(String::len).max().unwrap_or(0) + 2;
    let mut s = String::from("Operations (any number, run in order, pipelined):\n");
    for (info, u) in VERBS.iter().zip(&usages) {
        let _ = writeln!(s, "  {u:width$}{}", info.summary);
    }
    s.push_str(
        "
Keys and values are byte strings. A plain word is taken as it is; quote one with \"...\"
(escapes \\n \\r \\t \\b \\a \\\\ \\\" and \\xHH, as in redis-cli) or with '...' (where only
\\' is an escape): \"a b\", \"\\x00\\xff\", \"\" (the empty value). On the command line, an
argument that starts with a quote is read the same way: shmkv-client 0 read '\"a\\x00b\"'.
Answers print keys and values in this form, so they can be given back as they are.
cas takes --absent as its expected value to expect a missing key (a quoted \"--absent\" is
that value itself); scan's count may be left out (10). '#' starts a comment in a line.",
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Rendering answers.
// ---------------------------------------------------------------------------------------------

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn duration_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// A size in bytes: `512 bytes`, `1 KiB`, `1.5 MiB`.
fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return plural(n, "byte", "bytes");
    }
    let mut unit = 0;
    let mut scale = 1024u64;
    while unit + 1 < UNITS.len() && n / scale >= 1024 {
        unit += 1;
        scale *= 1024;
    }
    if n % scale == 0 {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / scale as f64, UNITS[unit])
    }
}

/// `memory_limit` when the server has no memory budget.
const NO_MEMORY_LIMIT: u64 = u64::MAX;

/// The text form of a Stats answer: `{label}:` and an indented block, one topic a line.
pub fn render_stats(label: &str, s: &Stats) -> String {
    let mut out = format!("{label}:\n");
    let ops: Vec<String> = s
        .ops
        .iter()
        .map(|(v, n)| format!("{} {n}", v.info().name))
        .collect();
    let _ = writeln!(out, "  requests   {} ({})", s.ops.total(), ops.join(", "));
    let errors: Vec<String> = s
        .errors
        .iter()
        .map(|(name, n)| format!("{} {n}", name.replace('_', " ")))
        .collect();
    let _ = writeln!(
        out,
        "  refused    {} ({})",
        s.errors.total(),
        errors.join(", ")
    );
    let _ = writeln!(
        out,
        "  table      {}, {}, longest bucket {}",
        plural(s.entries, "entry", "entries"),
        plural(s.buckets, "bucket", "buckets"),
        s.longest_bucket
    );
    if s.memory_limit == NO_MEMORY_LIMIT {
        let _ = writeln!(out, "  memory     {} used, no limit", size(s.memory_used));
    } else {
        let _ = writeln!(
            out,
            "  memory     {} used of {}",
            size(s.memory_used),
            size(s.memory_limit)
        );
    }
    let _ = writeln!(
        out,
        "  limits     keys up to {}, values up to {}",
        size(s.max_key),
        size(s.max_value)
    );
    let _ = writeln!(
        out,
        "  clients    {} of {} connected, {} in all",
        s.connected(),
        plural(s.client_slots, "slot", "slots"),
        plural(s.worker_threads(), "worker thread", "worker threads")
    );
    for slot in s.slots.iter().filter(|x| x.connected()) {
        let _ = writeln!(
            out,
            "    slot {}   pid {}, {}, {}",
            slot.slot,
            slot.owner_pid,
            plural(slot.workers, "worker thread", "worker threads"),
            plural(slot.requests, "request", "requests")
        );
    }
    let l = &s.latency;
    if l.samples == 0 {
        let _ = writeln!(
            out,
            "  latency    no samples yet (1 in {} requests is timed)",
            l.sample_every
        );
    } else {
        let _ = writeln!(
            out,
            "  latency    p50 {}, p99 {}, p99.9 {}, max {} ({} over the last {:.1}s, 1 in {} requests timed)",
            duration_ns(l.p50_ns),
            duration_ns(l.p99_ns),
            duration_ns(l.p999_ns),
            duration_ns(l.max_ns),
            plural(l.samples, "sample", "samples"),
            l.window_ms as f64 / 1000.0,
            l.sample_every
        );
    }
    if !s.other.is_empty() {
        let other: Vec<String> = s
            .other
            .iter()
            .map(|x| format!("{}[{}] {}", x.id.0, x.index, x.value))
            .collect();
        let _ = writeln!(out, "  unknown    {}", other.join(", "));
    }
    let _ = write!(out, "  uptime     {:.1}s", s.uptime_ms as f64 / 1000.0);
    out
}

/// The JSON form of a Stats answer (the `"stats"` field of [`render_json`]'s object).
pub fn stats_json(s: &Stats) -> Value {
    let mut requests: Map<String, Value> = s
        .ops
        .iter()
        .map(|(v, n)| (v.info().stat_name.to_string(), json!(n)))
        .collect();
    requests.insert("total".into(), json!(s.ops.total()));
    let mut errors: Map<String, Value> = s
        .errors
        .iter()
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect();
    errors.insert("total".into(), json!(s.errors.total()));
    let l = &s.latency;
    let mut v = json!({
        "requests": requests,
        "errors": errors,
        "table": {
            "entries": s.entries, "buckets": s.buckets, "longest_bucket": s.longest_bucket,
        },
        "memory": {
            "used": s.memory_used,
            "limit": if s.memory_limit == NO_MEMORY_LIMIT { Value::Null } else { json!(s.memory_limit) },
        },
        "limits": { "max_key": s.max_key, "max_value": s.max_value },
        "client_slots": s.client_slots,
        "connected": s.connected(),
        "worker_threads": s.worker_threads(),
        "slots": s.slots.iter().map(|x| json!({
            "slot": x.slot,
            "pid": if x.connected() { json!(x.owner_pid) } else { Value::Null },
            "workers": x.workers,
            "requests": x.requests,
        })).collect::<Vec<_>>(),
        "latency": {
            "samples": l.samples, "p50_ns": l.p50_ns, "p99_ns": l.p99_ns,
            "p999_ns": l.p999_ns, "max_ns": l.max_ns, "window_ms": l.window_ms,
            "sample_every": l.sample_every,
        },
        "uptime_ms": s.uptime_ms,
    });
    if !s.other.is_empty() {
        v["unknown"] = s
            .other
            .iter()
            .map(|x| json!({"id": x.id.0, "index": x.index, "value": x.value}))
            .collect();
    }
    v
}

/// `pairs` sorted by key (then value), as print shows them.
fn sorted(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<&(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = pairs.iter().collect();
    v.sort_unstable();
    v
}

/// The text for one answer: Ok for standard output, Err (a refusal: `"{label}: error: {e}"`)
/// for standard error. E.g. `read 1: 2`, `read 9: not found`, `insert 1 2: ok, replaced 7`,
/// `cas k --absent v: mismatch, value 5`, `scan 0 10: cursor 17, 3 keys: a b "c d"`,
/// `print 0: (1, 2) (7, 3)`; stats as [`render_stats`].
pub fn render_text(item: &Item, outcome: &Outcome) -> Result<String, String> {
    let label = &item.label;
    let text = match outcome {
        Outcome::Created | Outcome::Deleted(_) | Outcome::Swapped | Outcome::Done => {
            "ok".to_string()
        }
        Outcome::Replaced(old) => format!("ok, replaced {}", quote(old)),
        Outcome::Value(v) => quote(v),
        Outcome::NotFound => "not found".to_string(),
        Outcome::Exists(v) => format!("exists, value {}", quote(v)),
        Outcome::Mismatch(Some(v)) => format!("mismatch, value {}", quote(v)),
        Outcome::Mismatch(None) => "mismatch, absent".to_string(),
        Outcome::Number(n) => n.to_string(),
        Outcome::Count(n) => n.to_string(),
        Outcome::Keys { cursor, keys } => {
            let mut t = format!(
                "cursor {cursor}, {}",
                plural(keys.len() as u64, "key", "keys")
            );
            if !keys.is_empty() {
                t.push(':');
                for k in keys {
                    t.push(' ');
                    t.push_str(&quote(k));
                }
            }
            t
        }
        Outcome::Entries(e) if e.is_empty() => "empty".to_string(),
        Outcome::Entries(e) => sorted(e)
            .iter()
            .map(|(k, v)| format!("({}, {})", quote(k), quote(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Outcome::Threads(n) => format!("ok, {}", plural(u64::from(*n), "thread", "threads")),
        Outcome::Stats(stats) => return Ok(render_stats(label, &Stats::from_stats(stats))),
        Outcome::Refused(e) => return Err(format!("{label}: error: {e}")),
    };
    Ok(format!("{label}: {text}"))
}

/// The JSON field an argument goes in. The argument's name, but for two: scan's cursor is
/// `"from"`, since its answer's next cursor is `"cursor"`; threads start's `n` is `"count"`,
/// as it always was.
fn json_arg_name(arg: &Arg) -> &'static str {
    match arg.name {
        "cursor" => "from",
        "n" => "count",
        name => name,
    }
}

/// The JSON object for one answer, and whether it was refused. Fields in order: `"op"` (the
/// verb's `stat_name`), the arguments (keys and values through [`json_bytes`], cas's
/// `"expected"` null for `--absent`), what the answer adds, and `"status"`: `"ok"`,
/// `"not_found"`, `"exists"`, `"mismatch"` or `"error"` (with `"error"`: the message).
///
/// What an answer adds: insert `"previous"` (the old value or null); read and delete
/// `"value"` (null when not found); insert-new's exists and cas's mismatch `"current"` (null:
/// absent); add `"value"` (a number); len `"count"`; scan `"cursor"` (the next one) and
/// `"keys"`; print `"entries"` (`[key, value]` pairs sorted by key); threads `"threads"`;
/// stats `"stats"` ([`stats_json`]).
pub fn render_json(item: &Item, outcome: &Outcome) -> (Value, bool) {
    let info = item.op.verb().info();
    let mut m = Map::new();
    m.insert("op".into(), json!(info.stat_name));
    for (arg, v) in info.shape.args().iter().zip(op_args(&item.op)) {
        let value = match v {
            ArgValue::Bytes(b) => json_bytes(&b),
            ArgValue::Absent => Value::Null,
            ArgValue::U64(n) => json!(n),
            ArgValue::I64(n) => json!(n),
            ArgValue::U32(n) => json!(n),
        };
        m.insert(json_arg_name(arg).into(), value);
    }
    let mut status = "ok";
    match outcome {
        // Insert says what it replaced, here nothing.
        Outcome::Created if info.replies.contains(&ReplyKind::Replaced) => {
            m.insert("previous".into(), Value::Null);
        }
        Outcome::Created | Outcome::Swapped | Outcome::Done => {}
        Outcome::Replaced(old) => {
            m.insert("previous".into(), json_bytes(old));
        }
        Outcome::Value(v) | Outcome::Deleted(v) => {
            m.insert("value".into(), json_bytes(v));
        }
        Outcome::NotFound => {
            m.insert("value".into(), Value::Null);
            status = "not_found";
        }
        Outcome::Exists(v) => {
            m.insert("current".into(), json_bytes(v));
            status = "exists";
        }
        Outcome::Mismatch(v) => {
            m.insert(
                "current".into(),
                v.as_deref().map_or(Value::Null, json_bytes),
            );
            status = "mismatch";
        }
        Outcome::Number(n) => {
            m.insert("value".into(), json!(n));
        }
        Outcome::Count(n) => {
            m.insert("count".into(), json!(n));
        }
        Outcome::Keys { cursor, keys } => {
            m.insert("cursor".into(), json!(cursor));
            m.insert("keys".into(), keys.iter().map(|k| json_bytes(k)).collect());
        }
        Outcome::Entries(e) => {
            m.insert(
                "entries".into(),
                sorted(e)
                    .iter()
                    .map(|(k, v)| json!([json_bytes(k), json_bytes(v)]))
                    .collect(),
            );
        }
        Outcome::Threads(n) => {
            m.insert("threads".into(), json!(n));
        }
        Outcome::Stats(stats) => {
            m.insert("stats".into(), stats_json(&Stats::from_stats(stats)));
        }
        Outcome::Refused(e) => {
            m.insert("error".into(), json!(e.to_string()));
            status = "error";
        }
    }
    m.insert("status".into(), json!(status));
    (Value::Object(m), status == "error")
}

/// A byte count from the command line: digits, optionally followed by `K`, `M` or `G` (binary
/// units: 1024, 1024², 1024³; `KiB`, `MiB`, `GiB`, `KB`… and lower case accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (like 4096, 64K, 1M, 2G)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(all(test, not(loom)))]
mod tests;
