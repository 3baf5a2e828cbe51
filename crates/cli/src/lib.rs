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
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5T").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18014398509481984G").is_err());
    }
    use proptest::prelude::*;
    use shmkv::wire::{Stat, Verb};

    fn words(line: &str) -> Vec<Vec<u8>> {
        split_line(line)
            .unwrap()
            .into_iter()
            .map(|t| t.bytes)
            .collect()
    }

    fn parse(line: &str) -> Result<Vec<Item>, String> {
        parse_ops(&split_line(line).unwrap())
    }

    fn one(line: &str) -> Item {
        let mut items = parse(line).unwrap();
        assert_eq!(items.len(), 1, "{line}");
        items.pop().unwrap()
    }

    fn err(line: &str) -> String {
        parse(line).unwrap_err()
    }

    fn item(label: &str, op: Op) -> Item {
        Item {
            label: label.into(),
            op,
        }
    }

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    // --- split_line ------------------------------------------------------------------------

    #[test]
    fn split_line_separates_words_on_any_whitespace() {
        assert!(split_line("").unwrap().is_empty());
        assert!(split_line(" \t\r\n\x0b\x0c ").unwrap().is_empty());
        assert_eq!(words("  insert 1\t2\r\n"), [b("insert"), b("1"), b("2")]);
        assert_eq!(words("a\x0bb\x0cc"), [b("a"), b("b"), b("c")]);
        // Bare words are taken as they are, backslashes and non-ASCII included.
        assert_eq!(words(r"a\n é"), [b(r"a\n"), b("é")]);
        let t = split_line("read k").unwrap();
        assert_eq!(t, [Token::bare("read"), Token::bare("k")]);
    }

    #[test]
    fn split_line_comments_start_at_an_unquoted_hash_that_starts_a_word() {
        assert!(split_line("# only a comment").unwrap().is_empty());
        assert!(split_line("   #").unwrap().is_empty());
        assert_eq!(
            words("insert 1 2   # comment \"x"),
            [b("insert"), b("1"), b("2")]
        );
        assert_eq!(words("a#b c#"), [b("a#b"), b("c#")]);
        assert_eq!(words("\"#x\" '#y'"), [b("#x"), b("#y")]);
    }

    #[test]
    fn split_line_double_quotes_take_redis_escapes() {
        assert_eq!(
            words(r#""a b" "\n\r\t\b\a\\\"" "\x00\xff\x7F\xAb""#),
            [
                b("a b"),
                b"\n\r\t\x08\x07\\\"".to_vec(),
                vec![0x00, 0xff, 0x7f, 0xab],
            ]
        );
        // Any other escaped character is itself; \x without two hex digits is "x".
        assert_eq!(words(r#""\q\'\ \é""#), [b("q' é")]);
        assert_eq!(words(r#""\xZZ" "\x4" "\x""#), [b("xZZ"), b("x4"), b("x")]);
        // A single quote inside double quotes is a character.
        assert_eq!(words(r#""it's""#), [b("it's")]);
        // The empty word.
        let t = split_line(r#""""#).unwrap();
        assert_eq!(
            t,
            [Token {
                bytes: vec![],
                quoted: true
            }]
        );
    }

    #[test]
    fn split_line_single_quotes_take_only_the_quote_escape() {
        assert_eq!(words(r"'it\'s'"), [b("it's")]);
        assert_eq!(words(r"'a\nb\x00'"), [b(r"a\nb\x00")]);
        assert_eq!(words(r#"'say "hi"'"#), [b(r#"say "hi""#)]);
        assert_eq!(words("''"), [b("")]);
    }

    #[test]
    fn split_line_a_quote_inside_a_word_opens_a_quoted_part_as_redis_does() {
        let t = split_line(r#"a"b c" d'e f'"#).unwrap();
        assert_eq!(
            t,
            [
                Token {
                    bytes: b("ab c"),
                    quoted: true
                },
                Token {
                    bytes: b("de f"),
                    quoted: true
                }
            ]
        );
    }

    #[test]
    fn split_line_errors_are_one_line_with_the_column() {
        let e = split_line(r#"insert "a b"#).unwrap_err();
        assert_eq!(e, "unbalanced quotes: the \" at column 8 is never closed");
        let e = split_line("read 'abc").unwrap_err();
        assert_eq!(e, "unbalanced quotes: the ' at column 6 is never closed");
        // A backslash at the end does not close anything.
        assert!(
            split_line(r#""abc\"#)
                .unwrap_err()
                .starts_with("unbalanced quotes")
        );
        assert!(
            split_line(r#""abc\""#)
                .unwrap_err()
                .starts_with("unbalanced quotes")
        );
        assert!(
            split_line(r"'abc\'")
                .unwrap_err()
                .starts_with("unbalanced quotes")
        );
        let e = split_line(r#"read "a"b"#).unwrap_err();
        assert_eq!(
            e,
            "the closing \" at column 8 must be followed by a space or the end of the line"
        );
        assert_eq!(
            split_line("é 'x'y").unwrap_err(),
            "the closing ' at column 5 must be followed by a space or the end of the line"
        );
        // A quote followed by whitespace of any kind is fine.
        assert_eq!(words("\"a\"\t'b'\n"), [b("a"), b("b")]);
        for line in [r#"""#, "'", r#""a"b"#, r#"''x"#] {
            assert!(!split_line(line).unwrap_err().contains('\n'));
        }
    }

    // --- argv_token ------------------------------------------------------------------------

    #[test]
    fn argv_token_is_literal_unless_it_starts_with_a_quote() {
        for arg in [
            "insert", "a b", r"a\x00", "#x", r#"a"b""#, "", "--absent", "é",
        ] {
            assert_eq!(argv_token(arg).unwrap(), Token::bare(arg));
        }
        let t = argv_token(r#""a\x00b""#).unwrap();
        assert_eq!(
            t,
            Token {
                bytes: vec![b'a', 0, b'b'],
                quoted: true
            }
        );
        assert_eq!(argv_token(r"'it\'s'").unwrap().bytes, b("it's"));
        assert_eq!(argv_token(r#""a b""#).unwrap().bytes, b("a b"));
        assert_eq!(
            argv_token(r#""""#).unwrap(),
            Token {
                bytes: vec![],
                quoted: true
            }
        );
        assert!(argv_token(r#""--absent""#).unwrap().quoted);
    }

    #[test]
    fn argv_token_errors() {
        assert_eq!(
            argv_token(r#""abc"#).unwrap_err(),
            "argument \"abc: unbalanced quotes: the \" at column 1 is never closed"
        );
        assert_eq!(
            argv_token(r#""a"b"#).unwrap_err(),
            "argument \"a\"b goes on after its closing quote (quote the whole argument)"
        );
        assert!(argv_token(r#""a" "b""#).is_err());
        assert!(argv_token("'a' ").is_err());
    }

    // --- quote -----------------------------------------------------------------------------

    #[test]
    fn quote_prints_plain_words_bare_and_the_rest_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"abc", "abc"),
            (b"1", "1"),
            (b"a#", "a#"),
            (b"--absent", "--absent"),
            (b"!~{}", "!~{}"),
            (b"", r#""""#),
            (b"#x", r##""#x""##),
            (b"a b", r#""a b""#),
            (b" ", r#"" ""#),
            (b"it's", r#""it's""#),
            (b"say \"hi\"", r#""say \"hi\"""#),
            (b"a\\b", r#""a\\b""#),
            (b"\n\r\t\x07\x08", r#""\n\r\t\a\b""#),
            (b"\x00\x1f\x7f\x80\xff", r#""\x00\x1f\x7f\x80\xff""#),
            ("é".as_bytes(), r#""\xc3\xa9""#),
            (b"\x0b\x0c", r#""\x0b\x0c""#),
        ];
        for (bytes, want) in cases {
            assert_eq!(quote(bytes), *want, "{bytes:?}");
        }
    }

    /// Bytes with the awkward ones often: quotes, backslashes, `#`, whitespace, `x` and hex
    /// digits after backslashes, high bytes.
    fn awkward_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            any::<u8>(),
            prop::sample::select(b"\"'\\# \t\n\r\x0b\x0cxXaf09\x00\x7f\x80\xff-".to_vec()),
        ];
        prop::collection::vec(byte, 0..24)
    }

    /// `cases` cases (a few under Miri, which interprets every step), with no failure file:
    /// Miri's isolation forbids the file system, and a failing case is printed anyway.
    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases: if cfg!(miri) { 4 } else { cases },
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(2000))]

        #[test]
        fn quote_reads_back_as_exactly_one_word(bytes in awkward_bytes()) {
            let q = quote(&bytes);
            let tokens = split_line(&q).unwrap();
            prop_assert_eq!(tokens.len(), 1);
            prop_assert_eq!(&tokens[0].bytes, &bytes);
            prop_assert_eq!(argv_token(&q).unwrap().bytes, bytes.clone());
            // Bare exactly when split_line sees no quote.
            prop_assert_eq!(tokens[0].quoted, q.starts_with('"'));
            // Output is printable ASCII.
            prop_assert!(q.bytes().all(|c| (0x20..=0x7e).contains(&c)));
        }

        #[test]
        fn quoted_words_in_a_line_read_back_in_order(
            list in prop::collection::vec(awkward_bytes(), 0..6),
            sep in prop::sample::select(vec![" ", "\t", "  ", " \r\n "]),
        ) {
            let line = list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(sep);
            let got: Vec<Vec<u8>> = split_line(&line).unwrap().into_iter().map(|t| t.bytes).collect();
            prop_assert_eq!(got, list);
        }

        #[test]
        fn splitting_any_text_never_panics(line in any::<String>()) {
            let _ = split_line(&line);
            let _ = argv_token(&line);
        }

        #[test]
        fn splitting_quote_heavy_text_never_panics(
            line in prop::collection::vec(prop::sample::select(vec!['"', '\'', '\\', 'x', 'f', ' ', '#', 'é', 'a']), 0..20)
        ) {
            let line: String = line.into_iter().collect();
            if let Ok(tokens) = split_line(&line) {
                // Whatever split, quoted back, splits the same.
                let again = tokens.iter().map(|t| quote(&t.bytes)).collect::<Vec<_>>().join(" ");
                let back: Vec<Vec<u8>> = split_line(&again).unwrap().into_iter().map(|t| t.bytes).collect();
                prop_assert_eq!(back, tokens.into_iter().map(|t| t.bytes).collect::<Vec<_>>());
            }
            let _ = argv_token(&line);
        }
    }

    /// A small xorshift generator: the law over every length up to 64, with no framework.
    #[test]
    fn quote_law_over_random_bytes_of_every_length() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in 0..=64 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        // Half the bytes from the printable range, where bare words live.
                        if r & 1 == 0 {
                            0x20 + (r >> 8) as u8 % 0x5f
                        } else {
                            (r >> 8) as u8
                        }
                    })
                    .collect();
                let q = quote(&bytes);
                let t = split_line(&q).unwrap();
                assert_eq!(t.len(), 1, "{q}");
                assert_eq!(t[0].bytes, bytes, "{q}");
                assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
            }
        }
        // Every single byte, and every pair with a backslash or quote.
        for c in 0..=255u8 {
            for bytes in [vec![c], vec![b'\\', c], vec![c, b'"'], vec![b'#', c]] {
                let q = quote(&bytes);
                assert_eq!(split_line(&q).unwrap()[0].bytes, bytes, "{q}");
                assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
            }
        }
    }

    // --- base64 and JSON bytes -------------------------------------------------------------

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(unbase64(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        assert_eq!(base64(&[0]), "AA==");
        assert_eq!(base64(&[0x00, 0x10, 0x83, 0x10, 0x51, 0x87]), "ABCDEFGH");
    }

    #[test]
    fn unbase64_takes_only_canonical_padded_text() {
        for bad in [
            "Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v!A==", "Zm 9",
            "Zm9vYg=a", "=Zm9",
        ] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_bytes_is_a_string_when_utf8_else_base64() {
        assert_eq!(json_bytes(b"abc"), json!("abc"));
        assert_eq!(json_bytes("é\n\0".as_bytes()), json!("é\n\0"));
        assert_eq!(json_bytes(b""), json!(""));
        assert_eq!(json_bytes(b"a\xff"), json!({"base64": "Yf8="}));
        assert_eq!(json_bytes(b"\xc3"), json!({"base64": "ww=="}));
        assert_eq!(bytes_from_json(&json!("é")), Some("é".as_bytes().to_vec()));
        assert_eq!(
            bytes_from_json(&json!({"base64": "Yf8="})),
            Some(b"a\xff".to_vec())
        );
        for bad in [
            json!(1),
            json!(null),
            json!(["a"]),
            json!({"base64": "Yf8"}),
            json!({"base64": 1}),
            json!({"base64": "Yf8=", "x": 1}),
            json!({"b64": "Yf8="}),
        ] {
            assert_eq!(bytes_from_json(&bad), None, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn json_bytes_and_base64_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let v = json_bytes(&bytes);
            prop_assert_eq!(bytes_from_json(&v), Some(bytes.clone()));
            // Through the JSON text too.
            let back: Value = serde_json::from_str(&v.to_string()).unwrap();
            prop_assert_eq!(bytes_from_json(&back), Some(bytes.clone()));
            prop_assert_eq!(unbase64(&base64(&bytes)), Some(bytes.clone()));
            prop_assert_eq!(base64(&bytes).len(), bytes.len().div_ceil(3) * 4);
        }
    }

    // --- parse_ops -------------------------------------------------------------------------

    #[test]
    fn todays_command_lines_parse_as_before() {
        let tokens: Vec<Token> = ["insert", "1", "2", "insert", "2", "4"]
            .into_iter()
            .map(Token::bare)
            .collect();
        assert_eq!(
            parse_ops(&tokens).unwrap(),
            [
                item(
                    "insert 1 2",
                    Op::Insert {
                        key: b("1"),
                        value: b("2")
                    }
                ),
                item(
                    "insert 2 4",
                    Op::Insert {
                        key: b("2"),
                        value: b("4")
                    }
                ),
            ]
        );
        assert_eq!(one("read 1"), item("read 1", Op::Read { key: b("1") }));
        assert_eq!(
            one("delete 7"),
            item("delete 7", Op::Delete { key: b("7") })
        );
        assert_eq!(one("print 0"), item("print 0", Op::Print { bucket: 0 }));
        assert_eq!(
            one("threads start 2"),
            item("threads start 2", Op::ThreadsStart { n: 2 })
        );
        assert_eq!(one("threads stop"), item("threads stop", Op::ThreadsStop));
        assert_eq!(one("stats"), item("stats", Op::Stats));
        assert_eq!(one("quit"), item("quit", Op::Quit));
        assert!(parse_ops(&[]).unwrap().is_empty());
        assert_eq!(parse("read 1 read 2 stats").unwrap().len(), 3);
    }

    #[test]
    fn new_verbs_parse_with_labels_through_quote() {
        assert_eq!(
            one(r#"insert "a b" 2"#),
            item(
                r#"insert "a b" 2"#,
                Op::Insert {
                    key: b("a b"),
                    value: b("2")
                }
            )
        );
        assert_eq!(
            one("insert-new k v"),
            item(
                "insert-new k v",
                Op::InsertNew {
                    key: b("k"),
                    value: b("v")
                }
            )
        );
        assert_eq!(
            one("cas k --absent v"),
            item(
                "cas k --absent v",
                Op::Cas {
                    key: b("k"),
                    expected: None,
                    new: b("v")
                }
            )
        );
        assert_eq!(
            one(r#"cas k "--absent" v"#),
            item(
                r#"cas k "--absent" v"#,
                Op::Cas {
                    key: b("k"),
                    expected: Some(b("--absent")),
                    new: b("v")
                }
            )
        );
        assert_eq!(
            one(r#"cas k old "\x00""#),
            item(
                r#"cas k old "\x00""#,
                Op::Cas {
                    key: b("k"),
                    expected: Some(b("old")),
                    new: vec![0]
                }
            )
        );
        // --absent is only the expected value: as a key or a value it is a word.
        assert_eq!(
            one("insert --absent --absent").op,
            Op::Insert {
                key: b("--absent"),
                value: b("--absent")
            }
        );
        assert_eq!(
            one("cas --absent --absent --absent").op,
            Op::Cas {
                key: b("--absent"),
                expected: None,
                new: b("--absent")
            }
        );
        assert_eq!(
            one("add n -3"),
            item(
                "add n -3",
                Op::Add {
                    key: b("n"),
                    delta: -3
                }
            )
        );
        assert_eq!(one("add n +3").label, "add n 3");
        assert_eq!(one("len"), item("len", Op::Len));
        // Keys may look like verbs or numbers: arguments are positional.
        assert_eq!(
            one("insert read 1").op,
            Op::Insert {
                key: b("read"),
                value: b("1")
            }
        );
        // Numbers may be quoted (only scan's optional count may not).
        assert_eq!(one(r#"print "3""#).op, Op::Print { bucket: 3 });
        // Values may be empty, keys not.
        assert_eq!(
            one(r#"insert k """#),
            item(
                r#"insert k """#,
                Op::Insert {
                    key: b("k"),
                    value: vec![]
                }
            )
        );
        assert_eq!(
            err(r#"read """#),
            "empty key for 'read' (a key is at least 1 byte)"
        );
        assert!(err(r#"insert "" v"#).contains("empty key"));
        // The label of a non-UTF-8 key.
        assert_eq!(one(r#"read "\xff""#).label, r#"read "\xff""#);
    }

    #[test]
    fn scan_count_is_optional_and_taken_only_from_an_unquoted_number() {
        assert_eq!(
            one("scan 0"),
            item(
                "scan 0 10",
                Op::Scan {
                    cursor: 0,
                    count: 10
                }
            )
        );
        assert_eq!(
            one("scan 17 5"),
            item(
                "scan 17 5",
                Op::Scan {
                    cursor: 17,
                    count: 5
                }
            )
        );
        let items = parse("scan 3 read 1").unwrap();
        assert_eq!(
            items[0].op,
            Op::Scan {
                cursor: 3,
                count: SCAN_COUNT
            }
        );
        assert_eq!(items[1].op, Op::Read { key: b("1") });
        assert_eq!(parse("scan 3 2 len").unwrap().len(), 2);
        // A quoted number is not the count: it is the next operation, which does not exist.
        assert!(err(r#"scan 3 "2""#).starts_with("unknown operation '\"2\"'"));
        assert!(err("scan 3 0").contains("at least 1"));
        assert!(err("scan 3 4294967296").contains("out of range (1..=4294967295)"));
        assert_eq!(err("scan"), "'scan' needs a cursor");
        assert_eq!(
            err("scan x"),
            "cursor 'x' of 'scan' is not a non-negative integer"
        );
    }

    #[test]
    fn missing_arguments_are_named() {
        assert_eq!(err("insert 1"), "'insert' needs a value");
        assert_eq!(err("insert"), "'insert' needs a key");
        assert_eq!(err("read"), "'read' needs a key");
        assert_eq!(err("read 1 delete"), "'delete' needs a key");
        assert_eq!(err("print"), "'print' needs a bucket");
        assert_eq!(err("cas k"), "'cas' needs an expected value (or --absent)");
        assert_eq!(err("cas k --absent"), "'cas' needs a new value");
        assert_eq!(err("add k"), "'add' needs a delta");
        assert_eq!(err("threads start"), "'threads start' needs a number n");
    }

    #[test]
    fn bad_numbers_say_which_and_why() {
        assert_eq!(
            err("print x"),
            "bucket 'x' of 'print' is not a non-negative integer"
        );
        assert_eq!(
            err("print -1"),
            "bucket '-1' of 'print' is not a non-negative integer"
        );
        assert_eq!(
            err("print +1"),
            "bucket '+1' of 'print' is not a non-negative integer"
        );
        assert_eq!(
            err(r#"print """#),
            "bucket '\"\"' of 'print' is not a non-negative integer"
        );
        assert_eq!(
            err("print 18446744073709551616"),
            "bucket '18446744073709551616' of 'print' is out of range (0..=18446744073709551615)"
        );
        assert_eq!(
            one("print 18446744073709551615").op,
            Op::Print { bucket: u64::MAX }
        );
        assert_eq!(err("add k 1.5"), "delta '1.5' of 'add' is not an integer");
        assert_eq!(err("add k -"), "delta '-' of 'add' is not an integer");
        assert_eq!(err("add k --1"), "delta '--1' of 'add' is not an integer");
        assert_eq!(
            err("add k 9223372036854775808"),
            "delta '9223372036854775808' of 'add' is out of range (-9223372036854775808..=9223372036854775807)"
        );
        assert_eq!(
            one("add k -9223372036854775808").op,
            Op::Add {
                key: b("k"),
                delta: i64::MIN
            }
        );
        assert_eq!(
            err("threads start 0"),
            "n '0' of 'threads start' must be at least 1 (1..=4294967295)"
        );
        assert_eq!(
            err("threads start 4294967296"),
            "n '4294967296' of 'threads start' is out of range (1..=4294967295)"
        );
        assert_eq!(
            err("threads start two"),
            "n 'two' of 'threads start' is not a positive integer"
        );
        assert_eq!(
            one("threads start 4294967295").op,
            Op::ThreadsStart { n: u32::MAX }
        );
    }

    #[test]
    fn unknown_operations_list_the_table() {
        let names: Vec<&str> = VERBS.iter().map(|v| v.name).collect();
        assert_eq!(
            err("frob 1"),
            format!(
                "unknown operation 'frob' (operations: {})",
                names.join(", ")
            )
        );
        assert!(err("frob").contains("insert, read, delete, insert-new, cas"));
        assert!(err("read 1 2").starts_with("unknown operation '2'"));
        // A quoted word never names an operation, and is shown quoted.
        assert!(err(r#""read" 1"#).starts_with("unknown operation '\"read\"'"));
        assert!(err(r#"threads "stop""#).starts_with("unknown 'threads \"stop\"'"));
        // Names are case-sensitive.
        assert!(err("READ 1").starts_with("unknown operation 'READ'"));
        // The first word of a two-word name says what may follow it.
        assert_eq!(err("threads"), "'threads' needs 'start <n>' or 'stop'");
        assert_eq!(
            err("threads go"),
            "unknown 'threads go': use 'threads start <n>' or 'threads stop'"
        );
        assert!(err("start 1").starts_with("unknown operation 'start'"));
    }

    #[test]
    fn parse_errors_are_one_line() {
        for line in [
            "frob",
            "threads",
            "threads x",
            "insert",
            "print x",
            "read \"\"",
            "add k x",
            "threads start 0",
            "scan 0 0",
            "\"\\n\"",
        ] {
            let e = err(line);
            assert!(!e.contains('\n'), "{line}: {e}");
        }
    }

    /// A random argument of `kind`, with awkward bytes often.
    fn random_arg(kind: ArgKind, r: &mut impl FnMut() -> u64) -> ArgValue {
        fn random_bytes(min: usize, r: &mut impl FnMut() -> u64) -> Vec<u8> {
            let len = min + (r() % 6) as usize;
            (0..len)
                .map(|_| {
                    let x = r();
                    match x % 4 {
                        0 => b"\"'\\# -x"[(x >> 8) as usize % 7],
                        1 => (x >> 8) as u8,
                        _ => b'a' + (x >> 8) as u8 % 26,
                    }
                })
                .collect()
        }
        match kind {
            ArgKind::Key => ArgValue::Bytes(random_bytes(1, r)),
            ArgKind::Value => ArgValue::Bytes(random_bytes(0, r)),
            ArgKind::Expected => match r() % 4 {
                0 => ArgValue::Absent,
                1 => ArgValue::Bytes(ABSENT.as_bytes().to_vec()),
                _ => ArgValue::Bytes(random_bytes(0, r)),
            },
            ArgKind::U64 => ArgValue::U64(r() >> (r() % 64)),
            ArgKind::I64 => ArgValue::I64((r() >> (r() % 64)) as i64),
            ArgKind::PositiveU32 => ArgValue::U32(((r() >> (r() % 32)) as u32).max(1)),
        }
    }

    /// For every verb of the table, with random arguments: the label written from the
    /// arguments parses back to the same operation and label, and the operation's arguments
    /// read back from the codec are those given.
    #[test]
    fn labels_parse_back_to_the_same_operation_for_every_verb() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let mut line = String::new();
            let mut want = Vec::new();
            for _ in 0..1 + round % 4 {
                let info = &VERBS[(r() % VERBS.len() as u64) as usize];
                let args: Vec<ArgValue> = info
                    .shape
                    .args()
                    .iter()
                    .map(|a| random_arg(a.kind, &mut r))
                    .collect();
                let op = build_op(info, &args).unwrap();
                assert_eq!(op.verb(), info.verb);
                assert_eq!(op_args(&op), args, "{op:?}");
                let l = label(info, &args);
                line.push_str(&l);
                line.push(' ');
                want.push(Item { label: l, op });
            }
            let got = parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(got, want, "{line}");
            // Each label alone too, and as shell arguments.
            for it in &want {
                assert_eq!(one(&it.label), *it);
                let argv: Vec<Token> = split_line(&it.label)
                    .unwrap()
                    .iter()
                    .map(|t| {
                        if t.quoted {
                            argv_token(&quoted(&t.bytes)).unwrap()
                        } else {
                            argv_token(std::str::from_utf8(&t.bytes).unwrap()).unwrap()
                        }
                    })
                    .collect();
                assert_eq!(parse_ops(&argv).unwrap(), std::slice::from_ref(it));
            }
        }
    }

    #[test]
    fn every_verb_of_the_table_parses_from_its_usage() {
        for info in &VERBS {
            let line: Vec<String> = std::iter::once(info.name.to_string())
                .chain(info.shape.args().iter().map(|a| match a.kind {
                    ArgKind::Key | ArgKind::Value | ArgKind::Expected => "k".to_string(),
                    _ => "1".to_string(),
                }))
                .collect();
            let line = line.join(" ");
            let it = one(&line);
            assert_eq!(it.op.verb(), info.verb);
            assert_eq!(it.label, line);
        }
    }

    #[test]
    fn limits_are_checked_per_field() {
        let limits = Limits {
            max_key: 3,
            max_value: 4,
        };
        for ok in [
            "insert abc abcd",
            "cas abc --absent abcd",
            "cas k abcd v",
            "print 99999",
        ] {
            assert_eq!(check_limits(&one(ok), &limits), Ok(()), "{ok}");
        }
        assert_eq!(
            check_limits(&one("read abcd"), &limits).unwrap_err(),
            "key of 4 bytes is longer than the server's limit of 3 bytes (in 'read')"
        );
        assert_eq!(
            check_limits(&one("insert k abcde"), &limits).unwrap_err(),
            "value of 5 bytes is longer than the server's limit of 4 bytes (in 'insert')"
        );
        assert!(
            check_limits(&one("cas k abcde v"), &limits)
                .unwrap_err()
                .starts_with("value of 5 bytes")
        );
        assert!(
            check_limits(&one("cas k v abcde"), &limits)
                .unwrap_err()
                .starts_with("value of 5 bytes")
        );
        assert_eq!(
            check_limits(
                &one("len"),
                &Limits {
                    max_key: 1,
                    max_value: 0
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn completion_follows_the_table() {
        let next = |line: &str| next_words(&split_line(line).unwrap());
        let firsts = next("");
        assert_eq!(firsts.iter().filter(|w| **w == "threads").count(), 1);
        for v in &VERBS {
            assert!(
                firsts.contains(&v.name.split(' ').next().unwrap()),
                "{}",
                v.name
            );
        }
        assert_eq!(next("read 1"), firsts);
        assert!(next("read").is_empty());
        assert!(next("insert 1").is_empty());
        assert_eq!(next("insert 1 2"), firsts);
        assert!(next("cas k --absent").is_empty());
        assert_eq!(next("cas k --absent v"), firsts);
        assert_eq!(next("threads"), ["start", "stop"]);
        assert_eq!(next("read 1 threads"), ["start", "stop"]);
        assert!(next("threads start").is_empty());
        assert_eq!(next("threads start 2"), firsts);
        assert_eq!(next("threads stop"), firsts);
        // Scan's count is optional: after the cursor, an operation may come.
        assert!(next("scan").is_empty());
        assert_eq!(next("scan 0"), firsts);
        assert_eq!(next("scan 0 5"), firsts);
        // A quoted word is never a verb; unknown words are skipped.
        assert_eq!(next(r#""threads""#), firsts);
        assert_eq!(next("frob"), firsts);
        assert!(next("frob read").is_empty());
    }

    // --- help ------------------------------------------------------------------------------

    #[test]
    fn help_lists_every_verb_from_the_table() {
        let h = operations_help();
        for info in &VERBS {
            let line = h
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", info.name)))
                .unwrap_or_else(|| panic!("{} missing:\n{h}", info.name));
            assert!(line.ends_with(info.summary), "{line}");
        }
        assert!(h.contains("  insert <key> <value>  "));
        assert!(h.contains("  cas <key> <expected>|--absent <new>  "));
        assert!(h.contains("  scan <cursor> [<count>]  "));
        assert!(h.contains("  threads start <n>  "));
        assert!(h.contains("\\xHH"));
        assert!(h.contains("redis-cli"));
        assert!(h.contains("--absent"));
        assert!(h.lines().all(|l| l.chars().count() <= 100), "{h}");
    }

    // --- rendering -------------------------------------------------------------------------

    fn text(line: &str, outcome: Outcome) -> String {
        render_text(&one(line), &outcome).unwrap()
    }

    #[test]
    fn text_answers_keep_todays_forms() {
        assert_eq!(text("read 1", Outcome::Value(b("2"))), "read 1: 2");
        assert_eq!(text("read 9", Outcome::NotFound), "read 9: not found");
        assert_eq!(text("insert 1 2", Outcome::Created), "insert 1 2: ok");
        assert_eq!(
            text("insert 1 2", Outcome::Replaced(b("7"))),
            "insert 1 2: ok, replaced 7"
        );
        assert_eq!(text("delete 1", Outcome::Deleted(b("2"))), "delete 1: ok");
        assert_eq!(text("delete 1", Outcome::NotFound), "delete 1: not found");
        assert_eq!(
            text(
                "print 0",
                Outcome::Entries(vec![(b("7"), b("3")), (b("1"), b("2"))])
            ),
            "print 0: (1, 2) (7, 3)"
        );
        assert_eq!(text("print 0", Outcome::Entries(vec![])), "print 0: empty");
        assert_eq!(
            text("threads start 2", Outcome::Threads(3)),
            "threads start 2: ok, 3 threads"
        );
        assert_eq!(
            text("threads stop", Outcome::Threads(2)),
            "threads stop: ok, 2 threads"
        );
        assert_eq!(
            text("threads stop", Outcome::Threads(1)),
            "threads stop: ok, 1 thread"
        );
        assert_eq!(text("quit", Outcome::Done), "quit: ok");
    }

    #[test]
    fn text_answers_of_the_new_verbs() {
        assert_eq!(
            text("insert-new k v", Outcome::Created),
            "insert-new k v: ok"
        );
        assert_eq!(
            text("insert-new k v", Outcome::Exists(b("5"))),
            "insert-new k v: exists, value 5"
        );
        assert_eq!(
            text("cas k --absent v", Outcome::Swapped),
            "cas k --absent v: ok"
        );
        assert_eq!(
            text("cas k a v", Outcome::Mismatch(Some(b("5")))),
            "cas k a v: mismatch, value 5"
        );
        assert_eq!(
            text("cas k a v", Outcome::Mismatch(None)),
            "cas k a v: mismatch, absent"
        );
        assert_eq!(text("add k 3", Outcome::Number(8)), "add k 3: 8");
        assert_eq!(text("add k -9", Outcome::Number(-1)), "add k -9: -1");
        assert_eq!(text("len", Outcome::Count(12)), "len: 12");
        assert_eq!(
            text(
                "scan 0",
                Outcome::Keys {
                    cursor: 17,
                    keys: vec![b("a"), b("b"), b("c d")]
                }
            ),
            r#"scan 0 10: cursor 17, 3 keys: a b "c d""#
        );
        assert_eq!(
            text(
                "scan 17 1",
                Outcome::Keys {
                    cursor: 0,
                    keys: vec![b("z")]
                }
            ),
            "scan 17 1: cursor 0, 1 key: z"
        );
        assert_eq!(
            text(
                "scan 17",
                Outcome::Keys {
                    cursor: 0,
                    keys: vec![]
                }
            ),
            "scan 17 10: cursor 0, 0 keys"
        );
    }

    #[test]
    fn text_answers_quote_values_and_keys() {
        assert_eq!(text("read k", Outcome::Value(b("a b"))), r#"read k: "a b""#);
        assert_eq!(text("read k", Outcome::Value(vec![])), r#"read k: """#);
        assert_eq!(
            text("read k", Outcome::Value(vec![0xff])),
            r#"read k: "\xff""#
        );
        assert_eq!(
            text("insert k v", Outcome::Replaced(b("#1"))),
            r##"insert k v: ok, replaced "#1""##
        );
        assert_eq!(
            text(
                "print 0",
                Outcome::Entries(vec![(b("b"), vec![]), (b("a b"), b("\n"))])
            ),
            r#"print 0: ("a b", "\n") (b, "")"#
        );
        assert_eq!(
            text("cas k a v", Outcome::Mismatch(Some(vec![]))),
            r#"cas k a v: mismatch, value """#
        );
        // Byte order, not numeric order.
        assert_eq!(
            text(
                "print 0",
                Outcome::Entries(vec![(b("2"), b("x")), (b("10"), b("y"))])
            ),
            "print 0: (10, y) (2, x)"
        );
    }

    #[test]
    fn refusals_are_errors_with_the_label() {
        let e = render_text(
            &one("print 99"),
            &Outcome::Refused(ErrorCode::BadBucket {
                bucket: 99,
                buckets: 10,
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "print 99: error: bucket 99 out of range (the table has 10 buckets, 0..=9)"
        );
        let e =
            render_text(&one("add k 1"), &Outcome::Refused(ErrorCode::NotAnInteger)).unwrap_err();
        assert_eq!(
            e,
            "add k 1: error: the value is not a decimal 64-bit integer"
        );
    }

    fn js(line: &str, outcome: Outcome) -> Value {
        let (v, refused) = render_json(&one(line), &outcome);
        assert_eq!(refused, matches!(outcome, Outcome::Refused(_)));
        v
    }

    #[test]
    fn json_objects_carry_op_arguments_answer_and_status() {
        assert_eq!(
            js("read 1", Outcome::Value(b("2"))),
            json!({"op": "read", "key": "1", "value": "2", "status": "ok"})
        );
        assert_eq!(
            js("read 1", Outcome::NotFound),
            json!({"op": "read", "key": "1", "value": null, "status": "not_found"})
        );
        assert_eq!(
            js("insert 1 2", Outcome::Created),
            json!({"op": "insert", "key": "1", "value": "2", "previous": null, "status": "ok"})
        );
        assert_eq!(
            js("insert 1 3", Outcome::Replaced(b("2"))),
            json!({"op": "insert", "key": "1", "value": "3", "previous": "2", "status": "ok"})
        );
        assert_eq!(
            js("delete 1", Outcome::Deleted(b("3"))),
            json!({"op": "delete", "key": "1", "value": "3", "status": "ok"})
        );
        assert_eq!(
            js("delete 1", Outcome::NotFound),
            json!({"op": "delete", "key": "1", "value": null, "status": "not_found"})
        );
        assert_eq!(
            js("insert-new k v", Outcome::Created),
            json!({"op": "insert_new", "key": "k", "value": "v", "status": "ok"})
        );
        assert_eq!(
            js("insert-new k v", Outcome::Exists(b("5"))),
            json!({"op": "insert_new", "key": "k", "value": "v", "current": "5", "status": "exists"})
        );
        assert_eq!(
            js("cas k --absent v", Outcome::Swapped),
            json!({"op": "cas", "key": "k", "expected": null, "new": "v", "status": "ok"})
        );
        assert_eq!(
            js("cas k a v", Outcome::Mismatch(Some(b("5")))),
            json!({"op": "cas", "key": "k", "expected": "a", "new": "v", "current": "5", "status": "mismatch"})
        );
        assert_eq!(
            js("cas k a v", Outcome::Mismatch(None)),
            json!({"op": "cas", "key": "k", "expected": "a", "new": "v", "current": null, "status": "mismatch"})
        );
        assert_eq!(
            js("add k -3", Outcome::Number(5)),
            json!({"op": "add", "key": "k", "delta": -3, "value": 5, "status": "ok"})
        );
        assert_eq!(
            js("len", Outcome::Count(12)),
            json!({"op": "len", "count": 12, "status": "ok"})
        );
        assert_eq!(
            js(
                "scan 4",
                Outcome::Keys {
                    cursor: 9,
                    keys: vec![b("a"), vec![0xff]]
                }
            ),
            json!({"op": "scan", "from": 4, "count": 10, "cursor": 9,
                   "keys": ["a", {"base64": "/w=="}], "status": "ok"})
        );
        assert_eq!(
            js(
                "print 0",
                Outcome::Entries(vec![(b("7"), b("3")), (b("1"), b("2"))])
            ),
            json!({"op": "print", "bucket": 0, "entries": [["1", "2"], ["7", "3"]], "status": "ok"})
        );
        assert_eq!(
            js("threads start 2", Outcome::Threads(3)),
            json!({"op": "threads_start", "count": 2, "threads": 3, "status": "ok"})
        );
        assert_eq!(
            js("threads stop", Outcome::Threads(2)),
            json!({"op": "threads_stop", "threads": 2, "status": "ok"})
        );
        assert_eq!(
            js("quit", Outcome::Done),
            json!({"op": "quit", "status": "ok"})
        );
    }

    #[test]
    fn json_field_order_is_op_arguments_answer_status() {
        let v = js("insert 1 2", Outcome::Created);
        assert_eq!(
            v.to_string(),
            r#"{"op":"insert","key":"1","value":"2","previous":null,"status":"ok"}"#
        );
        let v = js(r#"read "\xff\xfe""#, Outcome::Value(b("é")));
        assert_eq!(
            v.to_string(),
            r#"{"op":"read","key":{"base64":"//4="},"value":"é","status":"ok"}"#
        );
    }

    #[test]
    fn json_refusals_carry_the_message() {
        let (v, refused) = render_json(&one("read 1"), &Outcome::Refused(ErrorCode::ShuttingDown));
        assert!(refused);
        assert_eq!(
            v,
            json!({"op": "read", "key": "1", "error": "the server is shutting down", "status": "error"})
        );
        let (v, _) = render_json(
            &one("insert k v"),
            &Outcome::Refused(ErrorCode::TooLarge {
                what: Field::Value,
                len: 9,
                max: 4,
            }),
        );
        assert_eq!(
            v["error"],
            "value of 9 bytes is longer than the server's limit of 4 bytes"
        );
    }

    // --- stats -----------------------------------------------------------------------------

    fn sample_stats() -> Vec<Stat> {
        let st = |id: shmkv::wire::StatId, index: u32, value: u64| Stat { id, index, value };
        let mut v = vec![
            st(Verb::Insert.info().stat_id, 0, 5),
            st(Verb::Read.info().stat_id, 0, 2),
            st(Verb::Scan.info().stat_id, 0, 1),
            st(Verb::Stats.info().stat_id, 0, 1),
            st(
                ErrorCode::BadBucket {
                    bucket: 0,
                    buckets: 0,
                }
                .stat_id(),
                0,
                1,
            ),
            st(ErrorCode::Overflow.stat_id(), 0, 2),
        ];
        let mut s = Stats::from_stats(&v);
        s.entries = 4;
        s.buckets = 10;
        s.longest_bucket = 2;
        s.memory_used = 1536;
        s.memory_limit = 64 << 20;
        s.max_key = 1024;
        s.max_value = 1 << 20;
        s.client_slots = 2;
        s.slots = vec![
            shmkv::stats::SlotStats {
                slot: 0,
                owner_pid: 0,
                workers: 0,
                requests: 13,
            },
            shmkv::stats::SlotStats {
                slot: 1,
                owner_pid: 4242,
                workers: 2,
                requests: 1,
            },
        ];
        s.latency.sample_every = 64;
        s.uptime_ms = 12_345;
        v = s.to_stats();
        v
    }

    #[test]
    fn stats_text_is_an_indented_block() {
        let item = one("stats");
        let t = render_text(&item, &Outcome::Stats(sample_stats())).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "stats:");
        assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{t}");
        assert!(
            t.contains(
                "  requests   9 (insert 5, read 2, delete 0, insert-new 0, cas 0, add 0, len 0, scan 1, print 0, threads start 0, threads stop 0, stats 1, quit 0)\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("  refused    3 (bad bucket 1, thread limit 0, last worker 0, shutting down 0, malformed 0, too large 0, out of memory 0, not an integer 0, overflow 2)\n"),
            "{t}"
        );
        assert!(
            t.contains("  table      4 entries, 10 buckets, longest bucket 2\n"),
            "{t}"
        );
        assert!(t.contains("  memory     1.5 KiB used of 64 MiB\n"), "{t}");
        assert!(
            t.contains("  limits     keys up to 1 KiB, values up to 1 MiB\n"),
            "{t}"
        );
        assert!(
            t.contains("  clients    1 of 2 slots connected, 2 worker threads in all\n"),
            "{t}"
        );
        assert!(
            t.contains("    slot 1   pid 4242, 2 worker threads, 1 request\n"),
            "{t}"
        );
        assert!(!t.contains("slot 0 "), "{t}");
        assert!(
            t.contains("  latency    no samples yet (1 in 64 requests is timed)\n"),
            "{t}"
        );
        assert!(t.ends_with("  uptime     12.3s"), "{t}");

        let mut s = Stats::from_stats(&sample_stats());
        s.memory_limit = u64::MAX;
        s.latency.samples = 1;
        s.latency.p50_ns = 999;
        s.latency.p99_ns = 1_500;
        s.latency.p999_ns = 2_500_000;
        s.latency.max_ns = 3_000_000_000;
        s.latency.window_ms = 10_000;
        let t = render_stats("stats", &s);
        assert!(t.contains("  memory     1.5 KiB used, no limit\n"), "{t}");
        assert!(
            t.contains("  latency    p50 999ns, p99 1.5µs, p99.9 2.5ms, max 3.0s (1 sample over the last 10.0s, 1 in 64 requests timed)\n"),
            "{t}"
        );
        s.other.push(Stat {
            id: shmkv::wire::StatId(200),
            index: 3,
            value: 7,
        });
        assert!(render_stats("stats", &s).contains("  unknown    200[3] 7\n"));
    }

    #[test]
    fn stats_json_has_requests_errors_table_memory_limits() {
        let (v, refused) = render_json(&one("stats"), &Outcome::Stats(sample_stats()));
        assert!(!refused);
        assert_eq!(v["op"], "stats");
        assert_eq!(v["status"], "ok");
        let s = &v["stats"];
        let req = s["requests"].as_object().unwrap();
        let names: Vec<&str> = req.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = VERBS.iter().map(|v| v.stat_name).collect();
        want.push("total");
        assert_eq!(names, want);
        assert_eq!(req["insert"], 5);
        assert_eq!(req["total"], 9);
        assert_eq!(s["errors"]["bad_bucket"], 1);
        assert_eq!(s["errors"]["overflow"], 2);
        assert_eq!(s["errors"]["total"], 3);
        assert_eq!(
            s["table"],
            json!({"entries": 4, "buckets": 10, "longest_bucket": 2})
        );
        assert_eq!(s["memory"], json!({"used": 1536, "limit": 64 << 20}));
        assert_eq!(s["limits"], json!({"max_key": 1024, "max_value": 1 << 20}));
        assert_eq!(s["client_slots"], 2);
        assert_eq!(s["connected"], 1);
        assert_eq!(s["worker_threads"], 2);
        assert_eq!(
            s["slots"],
            json!([
                {"slot": 0, "pid": null, "workers": 0, "requests": 13},
                {"slot": 1, "pid": 4242, "workers": 2, "requests": 1},
            ])
        );
        assert_eq!(s["latency"]["sample_every"], 64);
        assert_eq!(s["uptime_ms"], 12_345);
        assert!(s.get("unknown").is_none());
        let mut st = Stats::from_stats(&sample_stats());
        st.memory_limit = u64::MAX;
        assert_eq!(stats_json(&st)["memory"]["limit"], Value::Null);
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1024), "1 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size((1 << 20) - 1), "1024.0 KiB");
        assert_eq!(size(5 << 30), "5 GiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
    }
}
