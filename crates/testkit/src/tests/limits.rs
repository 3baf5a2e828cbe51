//! Tests of what the checker refuses or gives up on, and of the search's cost on long
//! histories and big values.

use super::*;

#[test]
fn bad_calls_and_limits_are_reported() {
    let c = ins(0, "1", "10", None, 5, 4);
    assert_eq!(
        check(std::slice::from_ref(&c)),
        Err(CheckError::BadCall(Box::new(c)))
    );
    // Returned without an answer, or answered without returning.
    let mut c = ins(0, "1", "10", None, 0, 4);
    c.output = None;
    assert!(matches!(check(&[c]), Err(CheckError::BadCall(_))));
    let mut c = ins(0, "1", "10", None, 0, 4);
    c.ret = None;
    assert!(matches!(check(&[c]), Err(CheckError::BadCall(_))));
    // Sixteen overlapping reads of an absent key, then a read of a value nobody wrote: the
    // search visits every subset of the reads (2^16 configurations) before it knows; with
    // a small limit it gives up.
    let mut h: Vec<Call> = (0..16).map(|i| read(i, "1", None, 0, 100)).collect();
    h.push(read(99, "1", Some("1000"), 101, 102));
    assert_eq!(not_lin(&h).blocked, 16);
    let opts = Options {
        max_configurations: 50,
    };
    assert!(matches!(
        check_with(&h, &opts),
        Err(CheckError::Inconclusive { key, .. }) if key == b("1")
    ));
}

#[test]
fn long_sequential_history_is_linear_in_work() {
    let mut h = Vec::new();
    let mut prev: Option<String> = None;
    for i in 0..20_000u64 {
        let v = i.to_string();
        let c = match i % 4 {
            0 | 1 => ins(i % 4, "7", &v, prev.as_deref(), 2 * i, 2 * i + 1),
            2 => cas(i % 4, "7", prev.as_deref(), &v, Ok(()), 2 * i, 2 * i + 1),
            _ => {
                let n: i64 = prev.as_deref().unwrap().parse().unwrap();
                let (d, sum) = (i as i64 - n, i as i64);
                add(i % 4, "7", d, num(sum), 2 * i, 2 * i + 1)
            }
        };
        h.push(c);
        prev = Some(v);
    }
    let r = check(&h).unwrap();
    assert_eq!(r.configurations, 20_000);
}

#[test]
fn big_values_cost_no_more_configurations() {
    // Values of 64 KiB: interned, so the memo holds ids, not copies.
    let big = |c: u8| vec![c; 64 * 1024];
    let op = |v: Vec<u8>| KvOp::Insert {
        key: b("k"),
        value: v,
    };
    let mut h: Vec<Call> = (0..8u8)
        .map(|i| {
            let out = if i == 0 {
                Output::Created
            } else {
                Output::Replaced(big(i - 1))
            };
            Call::new(i as u64, op(big(i)), out, 0, 100)
        })
        .collect();
    h.push(Call::new(
        9,
        KvOp::Read { key: b("k") },
        Output::Value(big(7)),
        101,
        102,
    ));
    check(&h).unwrap();
    h.last_mut().unwrap().output = Some(Output::Value(big(3)));
    not_lin(&h);
}
