//! An operation's arguments as values: built into an [`Op`] and read back from one through
//! the request codec, and written as the words of a label.

use crate::bytes::{quote, quoted};
use crate::parse::{ABSENT, SCAN_COUNT};
use shmkv::wire::{self, Arg, ArgKind, HEADER_LEN, Limits, Op, Request, Shape, VerbInfo};

/// One argument's value, by [`ArgKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgValue {
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
pub(crate) fn optional_default(shape: Shape, index: usize) -> Option<ArgValue> {
    match (shape, index) {
        (Shape::CursorCount, 1) => Some(ArgValue::U32(SCAN_COUNT)),
        _ => None,
    }
}

/// The operation of verb `info` with arguments `args` (in [`Shape::args`] order), built by
/// decoding the request the wire format lays out for them.
pub(crate) fn build_op(info: &VerbInfo, args: &[ArgValue]) -> Result<Op, String> {
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
pub(crate) fn op_args(op: &Op) -> Vec<ArgValue> {
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
pub(crate) fn label(info: &VerbInfo, args: &[ArgValue]) -> String {
    let mut s = info.name.to_string();
    for (arg, v) in info.shape.args().iter().zip(args) {
        s.push(' ');
        s.push_str(&arg_word(arg, v));
    }
    s
}
