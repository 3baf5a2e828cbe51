//! Parsing operations: words become [`Item`]s by the verb table, with completion and the
//! check of keys and values against the server's limits.

use crate::args::{ArgValue, build_op, label, op_args, optional_default};
#[cfg(doc)]
use crate::bytes::quote;
use crate::bytes::shown;
use crate::usage::{describe, or_list, usage, verb_names};
use crate::words::Token;
#[cfg(doc)]
use shmkv::wire::Shape;
use shmkv::wire::{Arg, ArgKind, ErrorCode, Field, Limits, Op, VERBS, Verb, VerbInfo};

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
/// unknown word is skipped. Only the names of verbs that `has` accepts are offered (the
/// operations of the engine the shell is connected to); the walk reads every verb.
pub fn next_words(before: &[Token], has: impl Fn(Verb) -> bool) -> Vec<&'static str> {
    let mut i = 0;
    while i < before.len() {
        let Ok((info, n)) = match_verb(&before[i..]) else {
            if i + 1 == before.len() {
                let t = &before[i];
                let seconds: Vec<&'static str> = VERBS
                    .iter()
                    .filter(|v| has(v.verb))
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
    for v in VERBS.iter().filter(|v| has(v.verb)) {
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
