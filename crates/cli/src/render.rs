//! Rendering one answer, after its label, as a line of text or as a JSON object.

use crate::args::{ArgValue, op_args};
use crate::bytes::{json_bytes, quote};
use crate::parse::Item;
use crate::stats::{plural, render_stats, stats_json};
use serde_json::{Map, Value, json};
use shmkv::stats::Stats;
use shmkv::wire::{Arg, Outcome, ReplyKind};

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
