//! How verbs and their arguments are named: usage lines, the words of error messages, and
//! the operations help.

use crate::args::optional_default;
use crate::parse::ABSENT;
use shmkv::wire::{Arg, ArgKind, VERBS, VerbInfo};
use std::fmt::Write as _;

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
pub(crate) fn describe(arg: &Arg) -> String {
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
pub(crate) fn usage(info: &VerbInfo) -> String {
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
pub(crate) fn or_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Every verb name, for "unknown operation".
pub(crate) fn verb_names() -> String {
    VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
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
