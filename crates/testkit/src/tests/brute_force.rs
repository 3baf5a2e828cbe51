//! The checker against a brute-force search of every order, on random histories.

use super::*;

/// xorshift64*, for the random histories below.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Whether some order of `calls` (each pending one placed or left out) keeps real-time
/// order and fits every answer: every permutation, tried by brute force.
fn brute_force(calls: &[Call]) -> bool {
    fn go(calls: &[Call], used: &mut Vec<bool>, state: Option<Vec<u8>>) -> bool {
        // Done when every returned call is placed.
        if calls
            .iter()
            .zip(used.iter())
            .all(|(c, &u)| u || c.ret.is_none())
        {
            return true;
        }
        for i in 0..calls.len() {
            if used[i] {
                continue;
            }
            // Every call that returned before this one was invoked must be placed.
            let ready = calls
                .iter()
                .zip(used.iter())
                .all(|(d, &u)| u || d.ret.is_none_or(|r| r >= calls[i].invoke));
            if !ready {
                continue;
            }
            let (out, after) = calls[i].op.apply(state.as_deref());
            if calls[i].ret.is_some() && Some(&out) != calls[i].output.as_ref() {
                continue;
            }
            used[i] = true;
            if go(calls, used, after) {
                return true;
            }
            used[i] = false;
        }
        false
    }
    go(calls, &mut vec![false; calls.len()], None)
}

#[test]
fn agrees_with_brute_force_on_random_histories() {
    // Small histories of every operation on one key, over few values (so that answers
    // often fit by chance), with answers from a random sequential run (mostly
    // linearizable) or corrupted (mostly not), some calls pending.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let values: [&[u8]; 4] = [b"", b"1", b"x", b"-1"];
    let (mut yes, mut no) = (0, 0);
    for round in 0..3000 {
        let n = 1 + rng.below(6) as usize;
        let key = b("k");
        let mut calls: Vec<Call> = (0..n)
            .map(|c| {
                let v = |r: &mut Rng| values[r.below(4) as usize].to_vec();
                let op = match rng.below(6) {
                    0 => KvOp::Insert {
                        key: key.clone(),
                        value: v(&mut rng),
                    },
                    1 => KvOp::Read { key: key.clone() },
                    2 => KvOp::Delete { key: key.clone() },
                    3 => KvOp::InsertNew {
                        key: key.clone(),
                        value: v(&mut rng),
                    },
                    4 => KvOp::Cas {
                        key: key.clone(),
                        expected: (rng.below(3) > 0).then(|| v(&mut rng)),
                        new: v(&mut rng),
                    },
                    _ => KvOp::Add {
                        key: key.clone(),
                        delta: [1, -1, 2, i64::MAX][rng.below(4) as usize],
                    },
                };
                let invoke = rng.below(12);
                Call::new(c as u64, op, Output::Created, invoke, invoke + rng.below(8))
            })
            .collect();
        // Answers: run the calls in a random order (then shuffle a little).
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut state: Option<Vec<u8>> = None;
        for &i in &order {
            let (out, after) = calls[i].op.apply(state.as_deref());
            calls[i].output = Some(out);
            state = after;
        }
        if round % 3 == 0 {
            let i = rng.below(n as u64) as usize;
            let other = calls[rng.below(n as u64) as usize].output.clone();
            calls[i].output = other;
        }
        if rng.below(4) == 0 {
            let i = rng.below(n as u64) as usize;
            calls[i].ret = None;
            calls[i].output = None;
        }
        let want = brute_force(&calls);
        let got = check(&calls);
        assert_eq!(got.is_ok(), want, "{got:?} for {calls:#?}");
        if want {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // Both verdicts must be common, or the comparison shows little.
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}
