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

mod args;
mod bytes;
mod parse;
mod render;
mod stats;
mod usage;
mod words;

pub use bytes::{bytes_from_json, json_bytes, quote};
pub use parse::{ABSENT, Item, SCAN_COUNT, check_limits, next_words, parse_ops};
pub use render::{render_json, render_text};
pub use stats::{render_stats, stats_json};
pub use usage::operations_help;
pub use words::{Token, argv_token, split_line};

#[cfg(doc)]
use shmkv::wire::{Op, Outcome, Shape, VERBS};
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
