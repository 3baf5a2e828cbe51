//! Unit tests of this crate, one file for each part of the text layer, and the helpers they
//! share.

mod bytes;
mod parse;
mod render;
mod stats;
mod usage;
mod words;

use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use shmkv::stats::Stats;
use shmkv::wire::{ArgKind, ErrorCode, Field, Limits, Op, Outcome, Stat, VERBS, Verb};

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
